"""Every YAML file under deploy/ parses, and every Kubernetes document is well-formed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy._files import DEPLOY, KUBERNETES, load_all, yaml_files


def test_deploy_has_the_files_operators_are_told_about() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in yaml_files()}
    assert {
        "compose.yaml",
        "kubernetes/base/kustomization.yaml",
        "kubernetes/base/deployment.yaml",
        "kubernetes/base/secret.example.yaml",
        "kubernetes/overlays/example/kustomization.yaml",
    } <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path: Path) -> None:
    documents = load_all(path)
    assert documents, f"{path} has no document"
    assert all(isinstance(doc, dict) for doc in documents)


@pytest.mark.parametrize(
    "path",
    [p for p in yaml_files() if p.is_relative_to(KUBERNETES)],
    ids=lambda p: p.relative_to(DEPLOY).as_posix(),
)
def test_kubernetes_documents_have_kind_and_name(path: Path) -> None:
    for doc in load_all(path):
        assert doc.get("apiVersion") and doc.get("kind"), path
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], path

"""``kustomize build``, by the real tool when the machine has one, else by a stand-in.

The stand-in, :func:`build`, is not kustomize. It implements exactly what
deploy/kubernetes uses — ``resources`` (files and directories), ``namespace``,
``images`` and ``patches`` given by ``path`` (strategic merge, matched by kind and
name) — and refuses every other field, so that a kustomization growing a feature it
lacks fails here instead of rendering something else. Where ``kustomize`` or
``kubectl`` is installed, the checks render with it, and a test compares the two.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import yaml

from tests.deploy._files import image_parts, load, load_all

Resource = dict[str, Any]

_FIELDS: Final = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})
#: The kinds deploy/kubernetes has that take no namespace.
_CLUSTER_SCOPED: Final = frozenset({"Namespace"})
#: Strategic merge keys of the lists our patches reach (others are replaced whole).
_MERGE_KEYS: Final = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
_TIMEOUT: Final = 60


def real_tool() -> list[str] | None:
    """The command that runs the real ``kustomize build``, if there is one here."""
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    return None


def build_with_tool(directory: Path) -> list[Resource]:
    """Render ``directory`` with the real tool (:func:`real_tool` must not be ``None``)."""
    command = real_tool()
    assert command is not None
    done = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} {directory}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


def render(directory: Path) -> list[Resource]:
    """Render ``directory``: with the real tool when there is one, else the stand-in."""
    return build_with_tool(directory) if real_tool() else build(directory)


def build(directory: Path) -> list[Resource]:
    """The stand-in for ``kustomize build directory``."""
    kustomization = load(directory / "kustomization.yaml")
    unknown = set(kustomization) - _FIELDS
    if unknown:
        raise NotImplementedError(f"{directory}: the stand-in has no {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources += build(path) if path.is_dir() else load_all(path)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise NotImplementedError(f"{directory}: only patches given by path: {patch}")
        _apply_patch(resources, load(directory / patch["path"]))
    if namespace := kustomization.get("namespace"):
        for resource in resources:
            if resource["kind"] not in _CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for resource in resources:
            _set_image(resource, image)
    return resources


def _apply_patch(resources: list[Resource], patch: Resource) -> None:
    matches = [
        r
        for r in resources
        if r["kind"] == patch["kind"] and r["metadata"]["name"] == patch["metadata"]["name"]
    ]
    assert len(matches) == 1, f"the patch matches {len(matches)} resources: {patch['metadata']}"
    merged = _merge(matches[0], patch)
    matches[0].clear()
    matches[0].update(merged)


def _merge(base: Any, patch: Any, key: str = "") -> Any:
    """A strategic merge patch: maps merge, named lists merge by their key, others replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    merge_key = _MERGE_KEYS.get(key)
    if merge_key and isinstance(base, list) and isinstance(patch, list):
        merged_list = list(base)
        for item in patch:
            same = [i for i, old in enumerate(merged_list) if old[merge_key] == item[merge_key]]
            if same:
                merged_list[same[0]] = _merge(merged_list[same[0]], item)
            else:
                merged_list.append(item)
        return merged_list
    return copy.deepcopy(patch)


def _set_image(resource: Resource, image: dict[str, str]) -> None:
    pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, tag, digest = image_parts(container["image"])
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        else:
            tag = image.get("newTag", tag)
            container["image"] = (
                name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            )

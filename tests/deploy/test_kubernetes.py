"""deploy/kubernetes, rendered as ``kubectl apply -k`` would apply it: the invariants.

Each check runs on the base and on the example overlay, rendered by the real
kustomize when the machine has it (``kubectl kustomize``), else by the stand-in in
:mod:`tests.deploy._kustomize`; where both exist, they must agree.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path, PurePosixPath
from typing import Any, Final

import pytest

from service.config import ConfigError, Settings
from tests.deploy._files import (
    KUBERNETES,
    SECRET_SETTINGS,
    assert_pinned,
    load,
    setting_names,
    walk,
)
from tests.deploy._kustomize import Resource, build, build_with_tool, real_tool, render

BASE: Final = KUBERNETES / "base"
OVERLAY: Final = KUBERNETES / "overlays" / "example"
SECRET_TEMPLATE: Final = BASE / "secret.example.yaml"
PORT: Final = 8000
#: A URL with a password in it: scheme://[user]:password@host.
_URL_WITH_PASSWORD: Final = re.compile(r"://[^/@\s]*:[^/@\s]+@")

POD_SECURITY: Final = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: Final = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module", params=[BASE, OVERLAY], ids=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    directory: Path = request.param
    return render(directory)


def _one(resources: list[Resource], kind: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} resources"
    return found[0]


def _pod(resources: list[Resource]) -> dict[str, Any]:
    spec: dict[str, Any] = _one(resources, "Deployment")["spec"]["template"]["spec"]
    return spec


def _container(resources: list[Resource]) -> dict[str, Any]:
    (container,) = _pod(resources)["containers"]
    assert isinstance(container, dict)
    return container


def _pod_labels(resources: list[Resource]) -> dict[str, str]:
    labels: dict[str, str] = _one(resources, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects_the_pods(selector: dict[str, str], resources: list[Resource]) -> None:
    assert selector, "an empty selector selects every pod"
    assert selector.items() <= _pod_labels(resources).items()


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


@pytest.mark.skipif(real_tool() is None, reason="neither kustomize nor kubectl is installed")
@pytest.mark.parametrize("directory", [BASE, OVERLAY], ids=["base", "overlay"])
def test_the_stand_in_renders_as_kustomize_does(directory: Path) -> None:
    def by_identity(resources: list[Resource]) -> dict[tuple[str, str, str], Resource]:
        return {
            (r["kind"], r["metadata"].get("namespace", ""), r["metadata"]["name"]): r
            for r in resources
        }

    assert by_identity(build(directory)) == by_identity(build_with_tool(directory))


def test_the_overlay_changes_what_it_says() -> None:
    # So that the overlay's checks below are checks of a patched render.
    overlay = render(OVERLAY)
    assert _one(overlay, "ConfigMap")["data"]["JWKS_ISSUER"] == "https://keys.example.com"
    assert "--workers" in _container(overlay)["args"]
    assert _container(overlay)["image"].startswith("registry.example.com/")
    assert {r["metadata"].get("namespace") for r in overlay if r["kind"] != "Namespace"} == {"jwks"}


def test_three_replicas_rolling_without_loss(rendered: list[Resource]) -> None:
    spec = _one(rendered, "Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_probes(rendered: list[Resource]) -> None:
    container = _container(rendered)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] in ("/healthz", "/readyz")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", PORT), probe


def test_resources_have_requests_and_limits(rendered: list[Resource]) -> None:
    resources = _container(rendered)["resources"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[bound].keys(), bound


def test_security_contexts(rendered: list[Resource]) -> None:
    pod = _pod(rendered)
    assert pod["securityContext"] == POD_SECURITY
    assert _container(rendered)["securityContext"] == CONTAINER_SECURITY
    assert pod["automountServiceAccountToken"] is False


def test_tmp_is_the_one_writable_place(rendered: list[Resource]) -> None:
    pod = _pod(rendered)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in _container(rendered)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    writable = [path for path, m in mounts.items() if not m.get("readOnly")]
    assert writable == ["/tmp"]


def test_the_drain_and_the_in_flight_requests_fit_the_grace_period(
    rendered: list[Resource],
) -> None:
    # SIGTERM: serve for JWKS_SHUTDOWN_DELAY (readiness 503), then finish in-flight
    # requests for up to JWKS_SHUTDOWN_TIMEOUT, then ~1 s to stop loops and the store;
    # a preStop hook would run before all of it, inside the same grace period.
    settings = Settings.from_env(
        {**_one(rendered, "ConfigMap")["data"], "JWKS_EMBEDDED_STORE": "allow"}
    )
    assert settings.shutdown_delay >= 3  # load balancers need a few seconds to let go
    assert "lifecycle" not in _container(rendered)  # the drain is the service's own
    budget = settings.shutdown_delay + settings.shutdown_timeout + 1
    assert budget < _pod(rendered)["terminationGracePeriodSeconds"]


def test_graceful_stop_and_spread(rendered: list[Resource]) -> None:
    pod = _pod(rendered)
    assert 10 <= pod["terminationGracePeriodSeconds"] <= 60
    constraints = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} >= {"kubernetes.io/hostname"}
    for constraint in constraints:
        _selects_the_pods(constraint["labelSelector"]["matchLabels"], rendered)


def test_every_image_is_pinned(rendered: list[Resource]) -> None:
    containers = [value for key, value in walk(rendered) if key in ("containers", "initContainers")]
    images = [c for group in containers for c in group]
    assert images
    for container in images:
        assert_pinned(container["image"])
        assert container["imagePullPolicy"] == "IfNotPresent"


def test_no_secret_in_the_render(rendered: list[Resource]) -> None:
    # The Secret is made by the operator (secret.example.yaml is its template only):
    # an apply of a Secret here would replace the real values with placeholders.
    assert [r for r in rendered if r["kind"] == "Secret"] == []
    config = _one(rendered, "ConfigMap")["data"]
    assert not SECRET_SETTINGS & config.keys()
    for name, item in _env(_container(rendered)).items():
        if name in SECRET_SETTINGS:
            assert "value" not in item, f"{name} has a literal value"
            assert "secretKeyRef" in item["valueFrom"], name
    literals = [str(v) for v in config.values()]
    literals += [
        str(item["value"]) for item in _env(_container(rendered)).values() if "value" in item
    ]
    for literal in literals:
        assert not _URL_WITH_PASSWORD.search(literal), "a password in a URL"
        assert not _is_kek(literal), "a KEK"


def _is_kek(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def test_every_variable_is_a_real_setting(rendered: list[Resource]) -> None:
    names = set(_one(rendered, "ConfigMap")["data"]) | set(_env(_container(rendered)))
    assert names, "no settings at all"
    assert names <= setting_names(), f"not settings: {sorted(names - setting_names())}"


def test_settings_refuse_the_embedded_store_and_come_from_the_config_map(
    rendered: list[Resource],
) -> None:
    config_map = _one(rendered, "ConfigMap")
    assert config_map["data"]["JWKS_EMBEDDED_STORE"] == "refuse"
    sources = [s["configMapRef"]["name"] for s in _container(rendered)["envFrom"]]
    assert sources == [config_map["metadata"]["name"]]


def test_the_config_map_and_secret_template_are_settings_the_service_accepts(
    rendered: list[Resource], tmp_path: Path
) -> None:
    kek = tmp_path / "kek"
    kek.write_text(base64.b64encode(bytes(32)).decode())
    env = dict(_one(rendered, "ConfigMap")["data"])
    env.update(JWKS_REDIS_URL=load(SECRET_TEMPLATE)["stringData"]["redis-url"])
    env.update(JWKS_KEK_FILE=str(kek))
    settings = Settings.from_env(env)
    assert not settings.embedded
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({k: v for k, v in env.items() if k != "JWKS_REDIS_URL"})
    assert caught.value.variable == "JWKS_REDIS_URL"


def test_secrets_are_mounted_files_from_the_templated_secret(rendered: list[Resource]) -> None:
    container = _container(rendered)
    template = load(SECRET_TEMPLATE)
    (volume,) = [v for v in _pod(rendered)["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == template["metadata"]["name"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    files = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    env = _env(container)
    # The store's URL too: it holds the store's password (and a Sentinel's).
    assert "JWKS_REDIS_URL" not in env
    for variable in ("JWKS_REDIS_URL_FILE", "JWKS_KEK_FILE", "JWKS_BOOTSTRAP_ADMIN_KEY_FILE"):
        path = PurePosixPath(env[variable]["value"])
        assert path.parent == PurePosixPath(mount["mountPath"]), variable
        assert files[path.name] in template["stringData"], variable


def test_the_secret_template_holds_placeholders_only() -> None:
    template = load(SECRET_TEMPLATE)
    assert template["kind"] == "Secret"
    assert "data" not in template
    for key, value in template["stringData"].items():
        assert "REPLACE" in value, key
    with pytest.raises(ConfigError):
        Settings.from_env({"JWKS_KEK": template["stringData"]["kek"]})


def test_the_service_reaches_the_container_port(rendered: list[Resource]) -> None:
    container = _container(rendered)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert int(args[args.index("--port") + 1]) == PORT
    service = _one(rendered, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"]) == ("http", 80)
    target = port["targetPort"]
    assert ports.get(target, target) == PORT
    _selects_the_pods(service["spec"]["selector"], rendered)


def test_the_deployment_selects_its_own_pods(rendered: list[Resource]) -> None:
    _selects_the_pods(_one(rendered, "Deployment")["spec"]["selector"]["matchLabels"], rendered)


def test_disruption_budget(rendered: list[Resource]) -> None:
    pdb = _one(rendered, "PodDisruptionBudget")
    spec = pdb["spec"]
    assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable") == 2
    _selects_the_pods(spec["selector"]["matchLabels"], rendered)


def test_autoscaler(rendered: list[Resource]) -> None:
    hpa = _one(rendered, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    deployment = _one(rendered, "Deployment")
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 10)
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]


def test_network_policy(rendered: list[Resource]) -> None:
    policy = _one(rendered, "NetworkPolicy")["spec"]
    _selects_the_pods(policy["podSelector"]["matchLabels"], rendered)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {PORT}
    egress = [(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]]
    assert {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (26379, "TCP")} <= set(egress)
    assert {port for port, _protocol in egress} <= {53, 6379, 6380, 26379}

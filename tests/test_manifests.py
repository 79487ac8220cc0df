"""The Kubernetes manifests (deploy/kubernetes/ and the README's copies) start as written.

Each document is validated offline with kubernetes-validate in strict mode (an unknown or
misplaced field is an error) against one pinned Kubernetes version; every pod template
meets the "restricted" Pod Security Standard and mounts a writable /tmp under a read-only
root; every Secret, ConfigMap and PersistentVolumeClaim a pod uses is defined beside it;
the README shows exactly the files; and each set-up has what it promises (one replica on
SQLite, or three on PostgreSQL with a disruption budget).
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_DIR = ROOT / "deploy" / "kubernetes"
README = ROOT / "README.md"
# The oldest Kubernetes the manifests promise to run on; its schemas ship inside
# kubernetes-validate (>= 1.31.0), so validation needs no network.
KUBERNETES_VERSION = "1.31"
IMAGE_UID = 10001

Doc = dict[str, Any]


def _readme_blocks() -> list[str]:
    """The README's ```yaml blocks that hold Kubernetes objects, in order."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    return [block for block in blocks if "apiVersion:" in block]


def _manifest_files() -> list[Path]:
    return sorted(MANIFEST_DIR.glob("*.yaml"))


def _sources() -> list[tuple[str, str]]:
    """(name, text) of every manifest: the files, then the README's blocks."""
    files = [(str(path.relative_to(ROOT)), path.read_text()) for path in _manifest_files()]
    blocks = [(f"README.md yaml block {i}", text) for i, text in enumerate(_readme_blocks(), 1)]
    return files + blocks


def _docs(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _all_docs() -> Iterator[tuple[str, Doc]]:
    for name, text in _sources():
        for i, doc in enumerate(_docs(text), 1):
            kind = doc.get("kind", "?")
            object_name = doc.get("metadata", {}).get("name", "?")
            yield f"{name} #{i} {kind}/{object_name}", doc


def _pod_spec(doc: Doc) -> Doc | None:
    kind = doc.get("kind")
    if kind == "Pod":
        return doc["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _pod_specs() -> Iterator[tuple[str, Doc]]:
    for label, doc in _all_docs():
        spec = _pod_spec(doc)
        if spec is not None:
            yield label, spec


def _containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _env(container: Doc) -> dict[str, Doc]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _setup(name: str) -> dict[str, list[Doc]]:
    """The objects of one deploy/kubernetes file, by kind."""
    by_kind: dict[str, list[Doc]] = {}
    for doc in _docs((MANIFEST_DIR / name).read_text()):
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


ALL_DOCS = list(_all_docs())
POD_SPECS = list(_pod_specs())


def test_there_are_manifests_in_both_places() -> None:
    """deploy/kubernetes/ holds both set-ups and the README shows Kubernetes objects."""
    names = [path.name for path in _manifest_files()]
    assert names == ["ha-postgresql.yaml", "single-replica-sqlite.yaml"]
    assert _readme_blocks(), "README.md shows no ```yaml block with apiVersion:"
    assert len(POD_SPECS) >= 2 * len(names)


def test_the_pinned_kubernetes_version_is_bundled() -> None:
    """kubernetes-validate ships the schemas of the pinned version (no download needed)."""
    bundled = all_versions()
    assert f"{KUBERNETES_VERSION}.0" in bundled, (
        f"kubernetes-validate {kubernetes_validate.__version__} bundles {bundled}, "
        f"not {KUBERNETES_VERSION}: pin a bundled version in tests/test_manifests.py"
    )


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The gate is not vacuous: a misplaced field in a pod template fails validation."""
    deployment = _setup("single-replica-sqlite.yaml")["Deployment"][0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["runAsNonroot"] = True  # a typo of runAsNonRoot
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("label", "doc"), ALL_DOCS, ids=[label for label, _ in ALL_DOCS])
def test_manifest_is_valid_kubernetes(label: str, doc: Doc) -> None:
    """Each document validates strictly against the pinned Kubernetes version's schema."""
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path) or "(top level)"
        pytest.fail(f"{label}: not valid Kubernetes {KUBERNETES_VERSION}: {path}: {exc.message}")
    except SchemaNotFoundError as exc:
        pytest.fail(f"{label}: {exc.message} (a typo in kind or apiVersion?)")


def test_readme_shows_exactly_the_manifest_files() -> None:
    """Every file in deploy/kubernetes/ is a README block, byte for byte, and vice versa."""
    files = {path.name: path.read_text() for path in _manifest_files()}
    blocks = _readme_blocks()
    for name, text in files.items():
        if text in blocks:
            continue
        closest = difflib.get_close_matches(text, blocks, n=1, cutoff=0.0)
        diff = "".join(
            difflib.unified_diff(
                closest[0].splitlines(keepends=True) if closest else [],
                text.splitlines(keepends=True),
                "README.md",
                f"deploy/kubernetes/{name}",
            )
        )
        pytest.fail(f"README.md does not show deploy/kubernetes/{name} as it is:\n{diff}")
    strays = [i for i, block in enumerate(blocks, 1) if block not in files.values()]
    assert not strays, f"README.md yaml blocks {strays} are not files in deploy/kubernetes/"


@pytest.mark.parametrize(("label", "spec"), POD_SPECS, ids=[label for label, _ in POD_SPECS])
def test_pod_template_meets_the_restricted_pod_security_standard(label: str, spec: Doc) -> None:
    """runAsNonRoot as the image's uid, RuntimeDefault seccomp, no privilege, no host access."""
    pod = spec.get("securityContext", {})
    assert pod.get("runAsNonRoot") is True, f"{label}: securityContext.runAsNonRoot"
    assert pod.get("runAsUser") == IMAGE_UID, f"{label}: securityContext.runAsUser"
    assert pod.get("runAsGroup") == IMAGE_UID, f"{label}: securityContext.runAsGroup"
    assert pod.get("fsGroup") == IMAGE_UID, f"{label}: securityContext.fsGroup"
    assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{label}: seccompProfile"
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(field), f"{label}: {field}"
    allowed_volumes = {"configMap", "secret", "emptyDir", "persistentVolumeClaim"}
    allowed_volumes |= {"downwardAPI", "projected", "ephemeral", "csi"}
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= allowed_volumes, f"{label}: volume {volume['name']} is {kinds}"
    for container in _containers(spec):
        where = f"{label}: container {container['name']}"
        context = container.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False, (
            f"{where}: allowPrivilegeEscalation"
        )
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL"
        assert not context.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
        assert not context.get("privileged"), f"{where}: privileged"
        assert context.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
        assert context.get("runAsNonRoot", True) is True, f"{where}: runAsNonRoot"
        assert context.get("runAsUser", IMAGE_UID) != 0, f"{where}: runAsUser 0"
        for port in container.get("ports", []):
            assert "hostPort" not in port, f"{where}: hostPort"


@pytest.mark.parametrize(("label", "spec"), POD_SPECS, ids=[label for label, _ in POD_SPECS])
def test_pod_template_mounts_a_writable_tmp(label: str, spec: Doc) -> None:
    """Under a read-only root file system every container gets an emptyDir at /tmp."""
    empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    for container in _containers(spec):
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp, f"{label}: container {container['name']} mounts nothing at /tmp"
        assert tmp[0]["name"] in empty_dirs, f"{label}: /tmp is not an emptyDir"
        assert not tmp[0].get("readOnly"), f"{label}: /tmp is mounted read-only"


@pytest.mark.parametrize("name", ["single-replica-sqlite.yaml", "ha-postgresql.yaml"])
def test_every_object_a_pod_uses_is_defined_beside_it(name: str) -> None:
    """Secrets (and their keys), ConfigMaps and claims the pods refer to are in the file."""
    setup = _setup(name)
    secrets = {
        d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
        for d in setup.get("Secret", [])
    }
    config_maps = {
        d["metadata"]["name"]: set(d.get("data", {})) for d in setup.get("ConfigMap", [])
    }
    claims = {d["metadata"]["name"] for d in setup.get("PersistentVolumeClaim", [])}
    for deployment in setup["Deployment"]:
        spec = deployment["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert claim in claims, f"{name}: PersistentVolumeClaim {claim} is not defined"
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, f"{name}: {volume}"
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, f"{name}: {volume}"
        for container in _containers(spec):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, f"{name}: {source}"
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["key"] in secrets.get(ref["name"], set()), (
                        f"{name}: {entry['name']} needs key {ref['key']} of Secret {ref['name']}"
                    )


@pytest.mark.parametrize("name", ["single-replica-sqlite.yaml", "ha-postgresql.yaml"])
def test_rules_config_map_passes_check(name: str, tmp_path: Path) -> None:
    """The rules.toml in the ConfigMap is accepted by `polaris-watchdog check`."""
    (config_map,) = _setup(name)["ConfigMap"]
    rules = tmp_path / "rules.toml"
    rules.write_text(config_map["data"]["rules.toml"])
    checked = subprocess.run(
        [sys.executable, "-m", "watchdog", "check", "--rules", str(rules)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"


@pytest.mark.parametrize("name", ["single-replica-sqlite.yaml", "ha-postgresql.yaml"])
def test_pods_probe_livez_and_stop_in_time(name: str) -> None:
    """Readiness and liveness on /livez (a replica that cannot watch is neither restarted
    nor cut off from Slack), 15 s to drain, a 256Mi memory limit, port 8080."""
    (deployment,) = _setup(name)["Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 15
    (container,) = spec["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/livez", probe
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert {"name": "http", "containerPort": 8080} in container["ports"]


@pytest.mark.parametrize("name", ["single-replica-sqlite.yaml", "ha-postgresql.yaml"])
def test_service_reaches_the_pods_on_8080(name: str) -> None:
    """The Service selects the pod template's labels and forwards 8080 to its http port."""
    setup = _setup(name)
    (service,) = setup["Service"]
    (deployment,) = setup["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080 and port["targetPort"] == "http"


def test_single_replica_setup_keeps_sqlite_on_its_own_claim() -> None:
    """One replica, Recreate, WATCHDOG_STATE on /data, which is the defined claim."""
    setup = _setup("single-replica-sqlite.yaml")
    (deployment,) = setup["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert _env(container)["WATCHDOG_STATE"]["value"] == "/data/watchdog.db"
    (data,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == data["name"]]
    (claim,) = setup["PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_ha_setup_runs_three_replicas_on_postgresql() -> None:
    """Three replicas rolling one at a time, state from a Secret's postgresql:// URL, the
    replica named after its pod, a disruption budget that keeps two, and no volume claim."""
    setup = _setup("ha-postgresql.yaml")
    (deployment,) = setup["Deployment"]
    replicas = deployment["spec"]["replicas"]
    assert replicas == 3
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 1}
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = _env(container)
    ref = env["WATCHDOG_STATE"]["valueFrom"]["secretKeyRef"]
    (secret,) = [s for s in setup["Secret"] if s["metadata"]["name"] == ref["name"]]
    assert secret["stringData"][ref["key"]].startswith("postgresql://")
    assert env["WATCHDOG_REPLICA"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert set(secret["stringData"]) >= {
        "POLARIS_API_KEY",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
    }
    assert "PersistentVolumeClaim" not in setup
    assert not any("persistentVolumeClaim" in v for v in spec["volumes"])
    (budget,) = setup["PodDisruptionBudget"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    kept = budget["spec"].get("minAvailable", replicas - budget["spec"].get("maxUnavailable", 0))
    assert 2 <= kept < replicas, "the budget must keep two replicas and still allow a drain"


def test_pods_run_as_the_images_user() -> None:
    """The pods' runAsUser is the uid the Dockerfile's USER names."""
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert users[-1] == f"{IMAGE_UID}:{IMAGE_UID}"

"""What the local stack must register, stated independently of the program's own helpers.

The upload map is derived from the monitoring/ tree here (not from stacks/monitoring_files.py),
so a file the program forgets, or uploads to the wrong path, is caught. Only the list of
pulled images is the program's: tests/monitoring/test_images.py holds it to images.yml, and
each of its containers is still looked for by name here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stacks.monitoring_files import IMAGE_KEYS
from tests.infra.harness import REPO_ROOT, RecordedResource, StackRun, unwrap

MONITORING = REPO_ROOT / "monitoring"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
BUILD_IMAGE = "docker-build:index:Image"
PASSWORD = "random:index/randomPassword:RandomPassword"
TOKEN_FILE = "/etc/alertmanager/secrets/webhook-token"
# The alert rule files' runbook_url links start with this placeholder base; the program
# uploads them with the stack's runbook base instead (and changes nothing else).
RUNBOOK_PLACEHOLDER = "https://aiops.invalid/runbooks/"
RULE_DIRS = (MONITORING / "prometheus/rules", MONITORING / "loki/rules/fake")
# The default base: the runbooks the in-stack analyzer serves at its published URL.
DEFAULT_RUNBOOK_BASE = "http://localhost:8080/runbooks/"

# postgres only with aiops:localDatabase postgresql (tests/infra/test_local_postgres.py).
OPTIONAL_IMAGES = ("postgres",)
PULLED = tuple(key for key in IMAGE_KEYS if key not in OPTIONAL_IMAGES)
CONTAINERS = (*PULLED, "analyzer")
VOLUMES = ("prometheus", "grafana", "loki", "alloy", "alertmanager", "analyzer")
# Images built FROM scratch: no shell or HTTP client to run a check with (distroless Loki checks
# itself with `loki -health`).
WITHOUT_HEALTHCHECK = {"nginx-exporter"}

EXPECTED_INVENTORY = sorted(
    [
        ("aiops:local:AnalyzerService", "analyzer-service"),
        ("aiops:local:LoggingStack", "logging-stack"),
        ("aiops:local:MonitoringStack", "monitoring-stack"),
        ("aiops:local:SampleWorkload", "sample-workload"),
        (BUILD_IMAGE, "analyzer-image"),
        (NETWORK, "network"),
        (PASSWORD, "grafana-admin-password"),
        (PASSWORD, "webhook-token"),
        *[(CONTAINER, name) for name in CONTAINERS],
        *[(REMOTE_IMAGE, f"{name}-image") for name in PULLED],
        *[(VOLUME, f"{name}-data") for name in VOLUMES],
    ]
)


def _dir(relative: str, target: str, suffixes: tuple[str, ...]) -> dict[str, Path]:
    directory = MONITORING / relative
    if not directory.is_dir():
        return {}
    return {
        f"{target}/{path.name}": path
        for path in sorted(directory.iterdir())
        if path.is_file() and path.suffix in suffixes
    }


def expected_uploads() -> dict[str, dict[str, Path]]:
    """container -> {path in the container: file in monitoring/} (the contract's paths)."""
    yml = (".yml", ".yaml")
    return {
        "prometheus": {
            "/etc/prometheus/prometheus.yml": MONITORING / "prometheus/prometheus.yml",
            **_dir("prometheus/rules", "/etc/prometheus/rules", yml),
        },
        "alertmanager": {
            "/etc/alertmanager/alertmanager.yml": MONITORING / "alertmanager/alertmanager.yml"
        },
        "loki": {
            "/etc/loki/config.yml": MONITORING / "loki/config.yml",
            **_dir("loki/rules/fake", "/etc/loki/rules/fake", yml),
        },
        "alloy": {"/etc/alloy/config.alloy": MONITORING / "alloy/config.alloy"},
        "grafana": {
            **_dir(
                "grafana/provisioning/datasources", "/etc/grafana/provisioning/datasources", yml
            ),
            **_dir("grafana/provisioning/dashboards", "/etc/grafana/provisioning/dashboards", yml),
            **_dir("grafana/dashboards", "/var/lib/grafana/dashboards", (".json",)),
        },
        "nginx": {"/etc/nginx/nginx.conf": MONITORING / "nginx/nginx.conf"},
    }


def expected_content(source: Path, runbook_base: str = DEFAULT_RUNBOOK_BASE) -> str:
    """What the program must upload for `source`: the file itself, with the runbook base
    replaced in alert rule files (the only substitution)."""
    text = source.read_text()
    if source.parent in RULE_DIRS:
        assert RUNBOOK_PLACEHOLDER in text, source
        return text.replace(RUNBOOK_PLACEHOLDER, runbook_base)
    return text


# Files of monitoring/ that are not container configuration: checked by their own tests.
NOT_UPLOADED_PARTS = ("runbooks", "tests")
NOT_UPLOADED_SUFFIXES = (".md",)


def uploadable_files() -> set[Path]:
    """Every configuration file of monitoring/ a container should receive."""
    found = set()
    for path in MONITORING.rglob("*"):
        relative = path.relative_to(MONITORING)
        if not path.is_file() or relative == Path("images.yml"):
            continue
        if any(part in NOT_UPLOADED_PARTS for part in relative.parts):
            continue
        if path.suffix in NOT_UPLOADED_SUFFIXES:
            continue
        found.add(path)
    return found


def uploads_of(resource: RecordedResource) -> dict[str, Any]:
    """path in the container -> uploaded content (secret envelopes kept)."""
    raw = resource.inputs.get("uploads") or []
    items = unwrap(raw) if not isinstance(raw, list) else raw
    return {item["file"]: item.get("content") for item in items}


def containers(run: StackRun) -> dict[str, RecordedResource]:
    return {r.name: r for r in run.of_type(CONTAINER)}


def env_map(resource: RecordedResource) -> dict[str, str]:
    return dict(item.split("=", 1) for item in resource.plain("envs") or [])

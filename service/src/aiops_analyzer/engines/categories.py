"""The category an analysis reports: the root cause the evidence supports, else the symptom.

An alert names a symptom (a target is down, CPU is busy, the error ratio rose); its family
decides the title and the generic steps. When a finding explains *why* (the host rebooted,
a firewall drops the scrape, garbage collection eats the CPU), the useful category is that
cause: it is what an on-call engineer files the incident under and what history searches by.
The names are the documented vocabulary (docs/development/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiops_analyzer.engines.findings import Finding

# A finding's topic -> the root-cause category it names.
CAUSE_BY_TOPIC: dict[str, str] = {
    "reboot": "reboot",
    "maintenance": "maintenance",
    "clock": "clock_skew",
    "dns": "dns",
    "firewall": "firewall",
    "tls": "tls",
    "certificate": "certificate_expiry",
    "conntrack": "network",
    "mtu": "network",
    # A service that cannot write a file because a filesystem ran out of inodes.
    "inodes": "disk_space",
    # "No space left on device": whatever failed (a database, an API, a job) could not write.
    "disk": "disk_space",
    # The first of several writers to fail on a full filesystem: what likely filled it.
    "disk_writer": "disk_space",
    "ports": "network",
    "link": "network",
    # A full link or TCP losing packets on the service's machine.
    "bandwidth": "network",
    "nfs": "network",
    "disk_failure": "disk_failure",
    # An md array rebuilding onto a replaced disk, resyncing or checking: work that ends.
    "raid_rebuild": "maintenance",
    # Database threads piled up behind a lock (a metadata lock, row locks).
    "lock_waits": "lock_contention",
    # A migration's ALTER waiting for the table's lock, every query queued behind it.
    "schema_change": "lock_contention",
    # A probe's connect phase from milliseconds to seconds: SYNs lost on the way.
    "path": "network",
    "gc": "garbage_collection",
    # Requests that wait for CPU the container's quota denies.
    "throttling": "cpu_saturation",
    "config": "misconfiguration",
    "listen": "misconfiguration",
    "shutdown": "container_stopped",
    # New errors right after a release (a package upgraded, a new version started): a target
    # down or crashing since then is the release's failure.
    "deploy": "deploy_regression",
}

# Symptoms of something unreachable or failing, which a broken path (network, name, firewall,
# certificate, configuration, a reboot) explains. A family that already names a cause (an OOM
# kill, a failed job, lock contention, a certificate alert...) keeps its own name.
AVAILABILITY_SYMPTOMS = frozenset(
    {
        "target_down",
        "container_crash",
        "error_rate",
        "latency",
        "network",
        "traffic_anomaly",
        "workload_unavailable",
        "unknown",
    }
)

# Causes that explain other symptoms: a runtime's collector explains busy CPU or slow
# requests (behind a memory alert it is the symptom of a full heap, so memory stays the
# category there); an orderly stop explains only something that went away. A firewall line
# next to a CPU alert explains nothing about the CPU.
# A broken path also stalls a stream that only lags (replication, consumers).
_PATH_SYMPTOMS = AVAILABILITY_SYMPTOMS | {"queue_lag"}
_CAUSES_FOR: dict[str, frozenset[str]] = {
    "network": _PATH_SYMPTOMS,
    "dns": _PATH_SYMPTOMS,
    "firewall": _PATH_SYMPTOMS,
    "garbage_collection": frozenset({"cpu_saturation", "host_load", "latency", "error_rate"}),
    "cpu_saturation": frozenset({"latency"}),
    "container_stopped": frozenset({"target_down", "container_crash", "workload_unavailable"}),
}

# Topics that explain more than their category's usual symptoms: a file server that stopped
# answering also shows as iowait, load and slow requests on its clients.
_TOPIC_EXPLAINS: dict[str, frozenset[str]] = {
    # A failing disk explains slow or saturated I/O, and an alert on the array itself.
    "disk_failure": frozenset({"disk_io", "latency", "disk_failure", "unknown"}),
    # A rebuild saturates the array: slow I/O, load, and an alert on the array itself.
    "raid_rebuild": frozenset({"disk_io", "latency", "disk_failure", "host_load", "unknown"}),
    "nfs": _PATH_SYMPTOMS | {"cpu_saturation", "host_load", "disk_io"},
    # A full disk also ends a job's runs in an error.
    "disk": AVAILABILITY_SYMPTOMS | {"failed_job"},
    "disk_writer": AVAILABILITY_SYMPTOMS | {"failed_job"},
}

# Below this a finding is a lead, not the cause.
MIN_CONFIDENCE = 0.6
# A release names the category only when errors that never appeared before began right
# after it (0.8); a version merely starting before the alert is a lead.
_MIN_CONFIDENCE_FOR = {"deploy": 0.8}


def cause_category(family: str, supported: Iterable[Finding]) -> str:
    """The best-supported cause's category when ``family`` is a symptom it explains, else
    ``family``."""
    best: tuple[float, str] | None = None
    for finding in supported:
        cause = CAUSE_BY_TOPIC.get(finding.topic)
        floor = _MIN_CONFIDENCE_FOR.get(finding.topic, MIN_CONFIDENCE)
        if cause is None or not finding.explains or finding.confidence < floor:
            continue
        explained = _TOPIC_EXPLAINS.get(finding.topic) or _CAUSES_FOR.get(
            cause, AVAILABILITY_SYMPTOMS
        )
        if family not in explained:
            continue
        if best is None or finding.confidence > best[0]:
            best = (finding.confidence, cause)
    return best[1] if best else family

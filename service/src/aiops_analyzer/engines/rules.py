"""The offline rules engine: deterministic, no network, no key.

It classifies an alert by what it *measures* -- the metric names and matchers of its PromQL
expression (generatorURL's g0.expr) -- and only then by its name and labels, so a rule it has
never seen still lands in a sensible family (target down, crash loop, disk, memory, ...). The
analysis cites the evidence items it used and says ``inconclusive`` when it could neither
classify the alert nor find any evidence.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiops_analyzer.engines import (
    categories,
    findings,
    findings_application,
    findings_dependency,
)
from aiops_analyzer.evidence.expression import (
    JOB_METRICS,
    STALE_OUTPUT,
    alert_expression,
    is_logql,
    metric_names,
)
from aiops_analyzer.evidence.runbooks import LINK_ONLY_DETAIL
from aiops_analyzer.evidence.series import fmt
from aiops_analyzer.evidence.target import host_name, scope, subject_labels
from aiops_analyzer.schemas import (
    Alert,
    AnalysisResult,
    EvidenceItem,
    LogTemplate,
    ProbableCause,
    Recovery,
    SeriesStats,
    Severity,
)
from aiops_analyzer.scrub import Scrubber, default_scrubber

SEVERITY_WORDS: dict[str, Severity] = {
    "critical": "critical",
    "crit": "critical",
    "page": "critical",
    "high": "critical",
    "error": "critical",
    "emergency": "critical",
    "fatal": "critical",
    "p1": "critical",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "p2": "warning",
    "p3": "warning",
    "info": "info",
    "informational": "info",
    "low": "info",
    "notice": "info",
    "none": "none",
}


@dataclass(frozen=True)
class Family:
    """One root-cause family and the signals that point to it."""

    category: str
    title: str
    severity: Severity
    causes: tuple[str, ...]
    remediation: tuple[str, ...]
    metric: str = ""  # regex over the metric names in the expression
    expr: str = ""  # regex over the raw expression (matchers, functions)
    name: str = ""  # regex over the alert name and summary annotation
    container_steps: tuple[str, ...] = field(default_factory=tuple)
    host_steps: tuple[str, ...] = field(default_factory=tuple)


# Order breaks ties: a more specific family comes before a more general one.
FAMILIES: tuple[Family, ...] = (
    Family(
        "heartbeat",
        "an always-firing heartbeat (the alerting pipeline works)",
        "none",
        (
            "This alert fires on purpose: a heartbeat proving that rule evaluation and "
            "delivery work (Watchdog), or a helper that only mutes info-level alerts "
            "(InfoInhibitor). Nothing is broken.",
        ),
        ("No action needed; alert on its absence (dead man's switch) instead.",),
        # kube-prometheus' InfoInhibitor only mutes info alerts: also nothing to investigate.
        expr=r"^\s*vector\s*\(\s*1\s*\)\s*$|^\s*ALERTS\s*\{[^}]*severity\s*=\s*\"info\"",
        name=r"watchdog|dead ?man'?s ?switch|heartbeat|info ?inhibitor",
    ),
    Family(
        "oom_killed",
        "processes killed for running out of memory",
        "critical",
        (
            "The kernel's OOM killer stopped a process that exceeded its memory limit.",
            "A memory leak or a traffic spike grew the working set past the limit.",
        ),
        (
            "Compare the memory working set with the limit before the kill.",
            "Raise the memory limit if the growth is legitimate, else find the leak "
            "(heap profile, recent deploys).",
        ),
        metric=r"oom",
        expr=r"OOMKilled",
        name=r"oom|outofmemory",
        container_steps=("Confirm with `docker inspect --format '{{.State.OOMKilled}}' NAME`.",),
        host_steps=("Check `journalctl -k | grep -i 'killed process'` on the host.",),
    ),
    Family(
        "container_crash",
        "a container restarting or disappearing",
        "critical",
        (
            "The container's process exits and is restarted (crash loop) or it was removed.",
            "A bad deploy or configuration makes the process fail at start-up.",
        ),
        (
            "Read the container's last logs before each restart for the exit reason.",
            "Roll back the latest image or configuration change if the crash started with it.",
        ),
        metric=r"restart|container_start_time_seconds|container_last_seen",
        expr=r"CrashLoopBackOff|changes\s*\(\s*container_start_time",
        name=r"restart|crash|flapping|container.*(down|gone|missing|killed)",
        container_steps=(
            "`docker ps -a --filter name=NAME` and `docker logs --tail 200 NAME`.",
            "`docker inspect --format '{{.State.ExitCode}} {{.RestartCount}}' NAME`.",
        ),
    ),
    Family(
        "tls",
        "TLS handshakes failing",
        "warning",
        (
            "Clients and the server no longer agree on TLS: a certificate that does not match "
            "the name or lacks its chain, an untrusted or expired CA, or a protocol or cipher "
            "one side no longer allows.",
        ),
        (
            "`openssl s_client -connect HOST:443 -servername NAME` shows the chain and the "
            "handshake's error.",
            "Check the certificate's names and chain and the TLS versions both sides allow; "
            "compare with the last change to either.",
        ),
        metric=r"(?:tls|ssl)_handshake|handshake_(?:errors?|failures?)",
        name=r"handshake",
    ),
    Family(
        "dns",
        "name resolution failing or slow",
        "warning",
        (
            "The resolver answers slowly, fails (SERVFAIL) or has no record (NXDOMAIN): its "
            "upstream is down or unreachable, a zone or record changed, or the path to it is "
            "blocked.",
        ),
        (
            "`dig @RESOLVER NAME` from the affected host, then against another resolver.",
            "Read the resolver's log and its upstreams (CoreDNS `forward`, "
            "`resolvectl status`) and the last zone or record change.",
        ),
        metric=r"^probe_dns_|^coredns_|^dnsmasq_|^unbound_|^bind_|^pdns_|_dns_(?:lookup|quer)",
        name=r"\bdns\b|name resolution|resolver|nxdomain|servfail|core ?dns",
    ),
    Family(
        "certificate_expiry",
        "a TLS certificate close to expiry",
        "warning",
        ("A certificate is about to expire and automatic renewal did not run or failed.",),
        (
            "Check the certificate's notAfter date and the renewal job's logs.",
            "Renew and reload the server holding the certificate.",
        ),
        metric=r"ssl|cert|x509|tls",
        name=r"cert|ssl|tls",
    ),
    Family(
        "reboot",
        "a host that rebooted",
        "warning",
        (
            "The host restarted: planned (kernel or package updates, unattended-upgrades, "
            "maintenance) or not (a kernel panic, a watchdog, a power or hypervisor event).",
        ),
        (
            "`journalctl --list-boots` and `last -x reboot shutdown` for when; the end of the "
            "previous boot (`journalctl -b -1 -n 100`) for why: a clean shutdown shows units "
            "stopping, a crash ends abruptly.",
            "If it was unplanned, read the previous boot's kernel log and the hypervisor's or "
            "cloud console's events for the host.",
        ),
        # node_boot_time_seconds moving, node_exporter's textfile flag, uptime rules.
        metric=r"boot_time|reboot_required|uptime",
        name=r"reboot|\bboot|uptime",
        host_steps=("`uptime` and `journalctl -b -1 -e` on the host.",),
    ),
    Family(
        "target_down",
        "a scrape target or service that is down",
        "critical",
        (
            "The process behind the target stopped or crashed.",
            "The target is running but unreachable (network, port, DNS, or a failing exporter).",
        ),
        (
            "Open Prometheus' Status > Targets page for the scrape error of this target.",
            "Check that the process is running and listens on the scraped port.",
            "Look at recent deploys or configuration changes of the service.",
        ),
        metric=r"^up$|_up$|^probe_success$|_alive$|_healthy$",
        # absent(); a Kubernetes node whose Ready condition is not true.
        expr=r"\babsent(?:_over_time)?\s*\(|condition\s*=\s*\"Ready\"",
        name=r"down|unreachable|absent|missing|unavailable|dead\b|not ?ready",
        container_steps=(
            "`docker ps -a --filter name=NAME`; if it exited: `docker logs --tail 200 NAME`, "
            "then `docker start NAME`.",
        ),
        host_steps=("`systemctl status SERVICE` and `journalctl -u SERVICE -n 200` on the host.",),
    ),
    Family(
        "garbage_collection",
        "time lost to garbage collection",
        "warning",
        (
            "The heap is too small for the live data (or something leaks), so the collector "
            "runs back to back and pauses the application.",
            "An allocation burst (a large result set, a cache fill, a batch) drives the collector.",
        ),
        (
            "Compare the heap left after each collection with the maximum heap: if it stays "
            "high, raise the heap (-Xmx, GOMEMLIMIT, --max-old-space-size) or find the leak "
            "with a heap dump or profile.",
            "Read the GC log around the alert start (full collections, allocation failures, "
            "pause causes).",
        ),
        # JVM (Micrometer's jvm_gc_pause_seconds, simpleclient's jvm_gc_collection_seconds),
        # Go's go_gc_duration_seconds, Node's nodejs_gc_duration_seconds, .NET's dotnet_gc_*.
        metric=r"(?:^|_)gc_|_gc$|garbage",
        name=r"\bgc\b|garbage",
    ),
    Family(
        "lock_contention",
        "requests waiting on locks (lock contention)",
        "warning",
        (
            "A long-running transaction or job holds locks that other requests queue behind.",
            "Concurrent writers update the same rows in different orders (deadlocks).",
        ),
        (
            "Find the blocking sessions and what they run (pg_locks with pg_stat_activity, "
            "MySQL's `SHOW ENGINE INNODB STATUS`).",
            "End or shorten the long transaction; add lock and statement timeouts.",
        ),
        metric=r"(?:^|_)(?:locks?|deadlocks?|lock_waits?|row_lock_\w+)(?:_|$)|max_tx_duration"
        r"|blocked_(?:queries|sessions)",
        name=r"\block(?:s|ed| wait| contention)?\b|deadlock|blocked quer",
    ),
    Family(
        "failed_job",
        "a scheduled job (backup, cron, timer) that fails",
        "warning",
        (
            "The job runs but ends in an error (credentials, permissions, a full or "
            "unreachable destination), so its last success grows old.",
            "The job's timer or cron entry no longer runs it.",
        ),
        (
            "Read the job's last run: `systemctl status UNIT` and `journalctl -u UNIT -n 100`, "
            "or the cron mail/log.",
            "Run it by hand as its user, fix the error, and check the next scheduled run.",
        ),
        metric=JOB_METRICS,
        # A failed systemd unit (a RAID member's state="failed" is no job); the time stamp a
        # job leaves on success grown old (`time() - x_timestamp_seconds`).
        expr=r"systemd_unit_state\s*\{[^}]*\bstate\s*=\s*\"failed\"|" + STALE_OUTPUT,
        name=r"backup|\bcron|\bjob\b|\btimer\b|snapshot|\bdump\b",
    ),
    Family(
        "deploy_regression",
        "a regression shipped by a deploy",
        "warning",
        ("A deploy introduced an error or a slowdown that did not exist before it.",),
        (
            "Roll back to the previous version, then reproduce the new errors against the "
            "release's changes.",
        ),
    ),
    Family(
        "error_rate",
        "an elevated rate of errors",
        "warning",
        (
            "Requests or operations fail (5xx, failed outcomes): a dependency, a bad deploy "
            "or overload.",
            "An upstream the service depends on fails or times out.",
        ),
        (
            "Break the errors down by route, status code and instance to find where they start.",
            "Check the service's error logs around the alert start and its dependencies' health.",
            "Roll back if the errors began with a deploy.",
        ),
        metric=r"errors?(?:_total)?$|failures?(?:_total)?$|failed(?:_total)?$|exceptions?",
        # 5xx/4xx matchers on a status label, or an outcome/result label that is not "ok".
        # status=~"5..", "^5..", "(5|4).."; a probe's status_code >= 400; Micrometer's
        # outcome="SERVER_ERROR", gRPC codes other than OK.
        expr=r"\b(?:code|status|status_code|response_code)\s*=~?\s*\"\^?\(?\[?[45]|\b5xx\b"
        r"|(?:code|status)\w*\s*>=?\s*[45]\d\d\b"
        r"|\b(?:outcome|result|status)\s*(?:!=\s*\"(?:ok|success)\"|=~?\s*\"\w*(?:error|fail))"
        r"|\bgrpc_(?:code|status)\s*(?:!=\s*\"OK\"|=~?\s*\"(?!OK\")\w)",
        name=r"error|5xx|fail|fallback",
    ),
    Family(
        "latency",
        "slow responses (high latency)",
        "warning",
        (
            "The service or one of its dependencies is saturated and requests queue up.",
            "A slow downstream call (database, external API) dominates response time.",
        ),
        (
            "Compare latency per route and instance; check CPU, memory and connection pools.",
            "Look for slow dependency calls and recent changes in traffic or code.",
        ),
        metric=r"duration|latency|_bucket$|response_time|_seconds_(?:sum|count)$",
        name=r"latency|slow|duration|response ?time",
    ),
    # Before disk_io and disk_space, whose metric patterns also match node_md_disks.
    Family(
        "disk_failure",
        "a failing disk or a degraded RAID array",
        "warning",
        (
            "A disk fails (unreadable or reallocated sectors, I/O errors) or the RAID array "
            "dropped a member and runs without redundancy.",
        ),
        (
            "Check the array and its disks: `cat /proc/mdstat`, `mdadm --detail /dev/mdX`, "
            "`smartctl -a /dev/sdX`, `dmesg | grep -iE 'I/O error|medium error'`.",
            "Replace the failing disk and add the new one to the array (`mdadm --manage "
            "/dev/mdX --add /dev/sdY`); until it has resynced there is no redundancy.",
        ),
        metric=r"node_md_disks|node_md_state|smartctl_|smartmon_|megaraid_|zfs_pool_health",
        name=r"\braid\b|\bsmart\b|disk (?:fail|health|error)",
    ),
    Family(
        "disk_io",
        "a disk saturated with I/O",
        "warning",
        (
            "A process reads or writes more than the disk can serve (a backup, compaction, "
            "a log storm, swapping), so requests queue on the device.",
        ),
        (
            "Find who does the I/O: `iostat -x 5` (%util, await) and `sudo iotop -o`.",
            "Move or throttle the heavy reader or writer, or give the volume more IOPS.",
        ),
        metric=r"node_disk_(?:io_time|io_now|read|written|reads|writes)|disk_io|io_time",
        name=r"\bio\b|i/o|iops|disk (?:busy|saturat|latency|read|write)",
    ),
    Family(
        "disk_space",
        "a filesystem running out of space",
        "warning",
        (
            "Logs, data or temporary files fill the filesystem.",
            "The volume is too small for the current data growth.",
        ),
        (
            "Find what grew: `df -h` and `du -xh --max-depth=2 MOUNT | sort -h | tail`.",
            "Clean or rotate logs and old data, or grow the volume.",
        ),
        # node_disk_* and telegraf's diskio_* count I/O, not space.
        metric=r"filesystem|volume|_fs_|inode|^(?!node_disk_|diskio).*disk",
        name=r"disk|filesystem|volume|storage|inode|space",
        container_steps=("`docker system df` to see images, volumes and logs using space.",),
    ),
    Family(
        "memory_pressure",
        "high memory usage",
        "warning",
        (
            "The working set approaches the memory limit (leak, cache growth or more load).",
            "Too little memory is available to the host or container for its workload.",
        ),
        (
            "Compare memory working set and limit over the last hours to tell a leak (steady "
            "growth) from load (follows traffic).",
            "Raise the limit or scale out if the usage is legitimate; restart buys time only.",
        ),
        # Major page faults and swap traffic are memory short of the working set.
        metric=r"memory|mem_|heap|swap|MemAvailable|pgmajfault|pswp",
        name=r"memory|\bmem|heap|swap",
        container_steps=("`docker stats --no-stream NAME` for current memory use and limit.",),
        host_steps=("`free -m` and `ps aux --sort=-rss | head` on the host.",),
    ),
    Family(
        "host_load",
        "a host overloaded (load above its CPU count)",
        "warning",
        ("More runnable processes than CPUs: CPU-bound work or processes blocked on I/O.",),
        (
            "Find the busy processes: `top` / `pidstat 5` and `iostat -x 5` for I/O wait.",
            "Move or throttle batch work, or add CPU capacity.",
        ),
        metric=r"node_load|load1|load5|load15",
        name=r"load",
    ),
    Family(
        "cpu_saturation",
        "high CPU usage",
        "warning",
        ("The workload uses its CPU allowance fully (load increase, hot loop, or throttling).",),
        (
            "Compare CPU usage with traffic: scale out if it follows load, profile if not.",
            "Check CPU throttling against the CPU limit.",
        ),
        metric=r"cpu",
        name=r"cpu|throttl",
        container_steps=("`docker stats --no-stream NAME` for current CPU use.",),
        host_steps=("`top -o %CPU` on the host for the busiest processes.",),
    ),
    Family(
        "workload_unavailable",
        "a workload with fewer ready replicas than desired",
        "warning",
        ("Pods fail to start or become ready (image, config, resources or scheduling).",),
        ("`kubectl describe` the workload and its pods for events; check readiness probes.",),
        metric=r"^kube_(?:deployment|statefulset|daemonset|replicaset|pod|job|horizontal)",
        name=r"replica|pod|deployment|statefulset|daemonset|job ?failed",
    ),
    Family(
        "queue_lag",
        "a growing backlog of queued work",
        "warning",
        (
            "Consumers process work more slowly than it arrives (too few workers, a slow "
            "dependency, or a burst of input).",
        ),
        (
            "Check that the consumers are alive and how fast they complete work.",
            "Look for a slow dependency behind each job; add workers if input simply grew.",
        ),
        metric=r"queue|backlog|_lag|pending|inflight|in_flight|age_of_oldest|messages_(?:ready|visible)",
        name=r"backlog|queue|\blag\b",
    ),
    Family(
        "clock_skew",
        "a clock out of sync",
        "warning",
        ("Time synchronisation (NTP/chrony) stopped working and the clock drifted.",),
        (
            "Check `timedatectl` and `chronyc tracking` (or `ntpq -p`) on the host.",
            "Make sure NTP (UDP 123) to the time servers is allowed and the daemon runs.",
        ),
        metric=r"timex|clock_skew|ntp_|chrony|time_offset|clock_offset",
        name=r"clock|skew|\bntp\b|time ?(sync|drift|offset)",
        # The machine's clock against Prometheus' scrape time.
        expr=r"node_time_seconds[^)]*\)?\s*-\s*timestamp\(\s*node_time_seconds",
    ),
    Family(
        "network",
        "network errors or saturation",
        "warning",
        ("Packet loss, interface errors or connection tracking exhaustion.",),
        ("Check interface errors/drops and conntrack usage on the affected host.",),
        metric=r"network|_net_|tcp|conntrack|netstat",
        name=r"network|packet|conntrack|\bnet\b",
    ),
    Family(
        "traffic_anomaly",
        "an unusual request rate",
        "warning",
        (
            "Traffic dropped (clients cannot reach the service, upstream routing changed) "
            "or spiked (load, retries, abuse).",
        ),
        (
            "Compare the request rate with the usual pattern and with upstream (load balancer) "
            "metrics.",
            "Check that the service is reachable from its clients.",
        ),
        metric=r"requests?(?:_total)?$|connections|http_",
        name=r"traffic|requests|rps|qps",
    ),
)

MAX_METRICS = 50
MAX_LABEL_CHARS = 100
FAMILY_BY_CATEGORY = {family.category: family for family in FAMILIES}
# Families about a resource running out: the busiest program in the logs is worth naming.
RESOURCE_FAMILIES = frozenset(
    {"cpu_saturation", "host_load", "memory_pressure", "disk_space", "disk_io"}
)
# Alerts a scheduled job's own work can raise while it runs.
_JOB_LOADS = frozenset({"cpu_saturation", "host_load", "memory_pressure", "disk_io"})

UNKNOWN = Family(
    "unknown",
    "a condition the rules engine does not recognise",
    "warning",
    ("The rule's condition is true; the rules engine has no specific explanation for it.",),
    (
        "Open the alert's source (generatorURL) to see the expression and its current value.",
        "Read the runbook and check recent deploys and configuration changes.",
    ),
)


@dataclass(frozen=True)
class Classification:
    family: Family
    matched_by: str  # "expression" | "name" | "none"


def classify(alert: Alert) -> Classification:
    """The best-matching family: signals from the expression weigh more than names."""
    expr = alert_expression(alert)
    # Real rules use a handful of metrics; a giant generated expression must stay cheap.
    metrics = metric_names(expr)[:MAX_METRICS] if expr and not is_logql(expr) else []
    # What the rule's author says it is about: the summary, else the description or message
    # (kube-prometheus' older rules carry only `message`).
    said = next(
        (
            alert.annotations[k]
            for k in ("summary", "description", "message")
            if alert.annotations.get(k)
        ),
        "",
    )
    name_text = " ".join([_split_camel(alert.alertname), said[:300]]).lower()
    best: tuple[int, int, Family, str] | None = None
    for order, family in enumerate(FAMILIES):
        score = 0
        how = "name"
        if family.expr and expr and re.search(family.expr, expr, re.IGNORECASE):
            score += 4
            how = "expression"
        if family.metric and any(re.search(family.metric, m, re.IGNORECASE) for m in metrics):
            score += 3
            how = "expression"
        if family.name and re.search(family.name, name_text):
            score += 1
        if score and (best is None or score > best[0]):
            best = (score, order, family, how)
    if best is None:
        return Classification(UNKNOWN, "none")
    return Classification(best[2], best[3])


def _split_camel(name: str) -> str:
    """KubePodCrashLooping -> Kube Pod Crash Looping, NodeDiskIOSaturation -> Node Disk IO
    Saturation, so name regexes see words."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).replace("_", " ")


def _label(alert: Alert, key: str) -> str:
    """A label of the alert's subject, short enough to quote in a sentence."""
    value = subject_labels(alert).get(key, "")
    return value if len(value) <= MAX_LABEL_CHARS else value[: MAX_LABEL_CHARS - 3] + "..."


# Labels that name an alert's subject, most specific first: a container or pod, a workload, a
# service (Compose, Kubernetes `app`/`component`, Micrometer's `application`), then the scrape
# target, a machine named without one, and what a queue or storage alert is about.
SUBJECT_KEYS = (
    "name",
    "container",
    "pod",
    "deployment",
    "statefulset",
    "daemonset",
    "job_name",
    "service",
    "compose_service",
    "app",
    "app_kubernetes_io_name",
    "component",
    "application",
    "instance",
    "nodename",
    "hostname",
    "host",
    "node",
    "persistentvolumeclaim",
    "queue",
    "consumergroup",
    "topic",
    "namespace",
)


def target(alert: Alert) -> str:
    """The alert's subject (never the exporter that reported on it)."""
    labels = subject_labels(alert)
    # A host's alert is about the machine: a `container` or `pod` label on node_exporter's
    # series (kube-prometheus) is the exporter's own.
    keys = ("instance", *SUBJECT_KEYS) if scope(alert) == "host" else SUBJECT_KEYS
    for key in keys:
        if labels.get(key):
            where = f"{key} {_label(alert, key)}"
            if key == "instance" and labels.get("job"):
                where += f" (job {_label(alert, 'job')})"
            return where
    if labels.get("job"):
        return f"job {_label(alert, 'job')}"
    return "an unnamed target"


# A service's symptoms that a swapping machine explains.
_SWAP_SYMPTOMS = frozenset({"latency", "error_rate", "unknown"})
_GONE_FAMILIES = frozenset({"target_down", "workload_unavailable", "container_stopped"})
# Findings that make the machine's disk the bottleneck of everything on it.
_DISK_CAUSES = frozenset({"disk_io", "raid_rebuild", "disk_failure"})


def _planned(family: Family, supported: list[findings.Finding]) -> bool:
    """A supported cause is announced maintenance, or an operator's command that stopped
    what went away."""
    return any(
        f.topic == "maintenance"
        or (
            family.category in (*_GONE_FAMILIES, "container_crash")
            and findings.stopped_by_operator(f)
        )
        for f in supported
    )


def severity_of(alert: Alert, family: Family) -> Severity:
    raw = alert.labels.get("severity", "").strip().lower()
    return SEVERITY_WORDS.get(raw, family.severity)


class RulesEngine:
    """Deterministic analysis from the alert and the evidence; never calls the network."""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        # Summaries quote labels and annotations, which may carry secrets.
        self.scrubber = scrubber or default_scrubber

    def analyze(self, alert: Alert, evidence: list[EvidenceItem]) -> AnalysisResult:
        found = classify(alert)
        ok = [item for item in evidence if item.status == "ok"]
        # Metrics: Prometheus' items and a Loki ruler alert's own LogQL series.
        prom = [i for i in ok if i.source == "prometheus" or i.kind == "alert_expression"]
        logs = [i for i in ok if i.source == "loki" and i.kind != "alert_expression"]
        runbook_items = [i for i in ok if i.source == "runbook"]
        window_end = max((i.window_end or 0.0 for i in prom), default=0.0)

        family = found.family
        gone = family.category in ("container_crash", "target_down") and scope(alert) in (
            "container",
            "kubernetes",
        )
        log_said = findings.log_causes(logs, boots=tuple(findings.boot_moments(prom)))
        # The host's kernel lines may tell of a kill in another container than this one.
        container = alert.labels.get("name") or alert.labels.get("container") or ""
        killed_elsewhere = findings.oom_victim_elsewhere(prom, logs, container)
        oom_said = None if killed_elsewhere else _first(log_said, "oom_killed")
        # An orderly shutdown in the logs: a fall of memory then is that stop, not a kill.
        stopped = any(f.topic == "shutdown" for f in log_said)
        oom = (
            findings.pod_oom_killed(prom)
            or findings.oom_counters(prom)
            or findings.memory_at_limit(prom, window_end, container_gone=gone, stopped=stopped)
            or oom_said
        )
        if oom and family.category in ("container_crash", "target_down", "unknown"):
            family = FAMILY_BY_CATEGORY["oom_killed"]  # the evidence says why it stopped
        cpu_alert = family.category in ("cpu_saturation", "host_load")
        disk_alert = family.category in ("disk_io", "disk_failure")
        memory = findings.memory_exhaustion(prom, cpu_alert=cpu_alert)
        if memory and (cpu_alert or disk_alert):  # swapping is disk I/O too
            family = FAMILY_BY_CATEGORY["memory_pressure"]  # CPU time spent reclaiming memory
        application = findings_application.read(
            family.category, prom, logs, found.matched_by == "expression"
        )
        if application.family:
            family = FAMILY_BY_CATEGORY[application.family]  # the cause behind the symptom
        elif memory and family.category in _SWAP_SYMPTOMS:
            # The machine swaps: every process on it stalls, whatever its own logs say.
            family = FAMILY_BY_CATEGORY["memory_pressure"]
            memory = findings.memory_exhaustion(prom, cpu_alert=False, service_alert=True)
        # Busy workers on a swapping machine wait on memory: more of them would make it worse.
        app_found = [
            f
            for f in application.findings
            if not (memory and family.category == "memory_pressure" and f.topic == "resource_limit")
        ]
        # A rebuild onto a replaced disk tells the story of the disk that failed before it;
        # its old failure lines are history unless the surviving disk fails too.
        rebuild = findings.raid_rebuilding(prom, logs)
        rebuild_start = findings.rebuild_started(prom) if rebuild else None
        replaced = rebuild_start is not None and not findings.disk_errors_since(logs, rebuild_start)
        log_found = [
            f
            for f in log_said
            if f is not oom
            and not (replaced and f.topic == "disk_failure")
            and f.family != "oom_killed"
            and f.topic not in application.drop_topics
            # Maintenance explains a machine or service that went away, nothing else.
            and (f.topic != "maintenance" or family.category in _GONE_FAMILIES)
        ]
        if family.category == "oom_killed" and not oom:
            oom = oom_said
        flapping = findings.intermittent_condition(prom)
        extra: list[findings.Finding | None] = [flapping, oom, memory]
        # "Cache" that stays (tmpfs): told as such, neither reclaimable nor the process's leak.
        unreclaimed = findings.unreclaimed_cache(prom, logs)
        cache = (
            None
            if unreclaimed
            else findings.page_cache(prom)
            or findings.host_page_cache(prom, alert_expression(alert), logs)
        )
        extra.append(unreclaimed)
        # A deploy the application evidence clears is not quoted as the shift's cause.
        shift_logs = [] if "deploy" in application.drop_topics else logs
        extra += [cache, findings.metric_shift(prom, shift_logs)]
        extra += [findings.rebooted(prom), findings.clock_offset(prom)]
        extra.append(findings.machine_rebooted_meanwhile(prom, alert.starts_at.timestamp()))
        extra.append(findings.tmpfs_path_gone(logs))
        extra.append(findings.changed_setting(logs))
        extra.append(findings.machine_clock(prom, logs))
        if family.category == "clock_skew":
            extra.append(findings.egress_blocked(logs, 123, "NTP"))
        extra += [findings.conntrack_full(prom), findings.nic_link(prom)]
        extra.append(findings.nic_errors(prom))
        extra.append(findings.link_saturated(prom))
        extra += [findings.probe_phase(prom), findings.probe_certificate(prom)]
        extra += [findings.machine_conntrack_full(prom), findings.mtu_changed(prom)]
        extra += [findings.queue_without_consumers(prom), findings.commits_stopped(prom)]
        extra.append(findings.queue_rates_moved(prom))
        extra.append(findings.mysql_lock_waits(prom))
        extra += [findings.raid_degraded(prom, logs), rebuild]
        extra += [findings.gc_pauses(prom), findings.goroutine_leak(prom)]
        extra.append(findings.pod_cannot_start(prom))
        extra.append(findings.inodes_behind_no_space(prom, logs))
        # Several writers failing on a full filesystem, whatever the alert measures.
        extra.append(findings.first_to_meet_full_disk(logs))
        if not oom:
            extra.append(findings.pod_last_exit(prom))
        elif family.category == "oom_killed":
            extra.append(findings.last_words(logs))
        if (oom or family.category == "oom_killed") and not killed_elsewhere:
            extra.append(findings.oom_victim(prom, logs))
        if oom or family.category in ("oom_killed", "memory_pressure"):
            extra.append(findings.heap_above_limit(prom, logs))
        if cpu_alert or disk_alert or family.category == "latency":
            # Busy CPU that the workload does not spend: stolen, waiting on disk, or capped.
            # Swapping also shows as iowait; then memory is the cause, not the disk.
            extra += [findings.cpu_steal(prom), findings.cpu_throttled(prom)]
            extra.append(None if memory else findings.io_saturation(prom, disk_alert=disk_alert))
        if family.category == "disk_space":
            extra.append(findings.inodes(prom, alert_expression(alert)))
            extra.append(findings.inactive_replication_slot(prom))
            extra.append(findings.core_dumps(logs))
            host = host_name(alert.labels.get("instance", ""))
            extra.append(findings.chatty_container(logs, host))
            extra.append(findings.logs_outgrow_the_disk(logs))
            mountpoint = alert.labels.get("mountpoint", "")
            extra.append(findings.writes_under_mount(logs, mountpoint) if mountpoint else None)
        if family.category in ("memory_pressure", "disk_space") and not (
            oom or cache or unreclaimed
        ):
            extra.append(findings.growth(prom))
        if any(f and f.topic in _DISK_CAUSES and f.confidence >= 0.7 for f in extra):
            # Slow statements on a saturated or rebuilding disk: the disk, not their plans.
            app_found = [
                (findings_dependency.slow_queries(logs, disk_bound=True) or f)
                if f.topic == "slow_query"
                else f
                for f in app_found
            ]
        extra += app_found
        extra += log_found
        slow_burn = family.category in ("disk_space", "memory_pressure")
        # Lines a finding already quotes with their meaning are not quoted again as "errors".
        quoted = (*log_found, *app_found)
        errors = findings.error_messages(logs, skip=quoted, slow_burn=slow_burn)
        extra.append(errors)
        # What else began just before, for the summary: context, not a cause.
        news = findings.news_before(logs, skip=(*quoted, *([errors] if errors else [])))
        if family.category in ("container_crash", "oom_killed"):
            extra.append(findings.no_restarts(prom) if not oom else None)
        if family.category in RESOURCE_FAMILIES:
            extra.append(findings.busy_programs(logs))
        if family.category in _JOB_LOADS:
            ends = (
                alert.ends_at.timestamp() if alert.status == "resolved" and alert.ends_at else None
            )
            extra.append(findings.scheduled_job(logs, alert.starts_at.timestamp(), ends))
        if cpu_alert:
            extra.append(findings.retry_loop(logs))
        supported = _one_per_topic([f for f in extra if f])
        no_data = not (prom or logs) and (family is UNKNOWN or _sources_were_asked(evidence))
        # A firing alert whose evidence was read and explains nothing is inconclusive, even
        # when the alert says what it measures: a stock cause would be a guess. A heartbeat
        # explains itself; a resolved alert is answered by when and whether it recovered;
        # with no source configured at all (offline), the family's advice is all there is.
        evidence_read = bool(prom or logs)
        firing_symptom = alert.status == "firing" and family.category != "heartbeat"
        unexplained = not any(f.explains for f in supported) and (
            family is UNKNOWN
            or (evidence_read and firing_symptom and not _measures_cause(found, family, prom))
        )
        recovery = recovery_of(
            alert,
            evidence,
            {i for f in supported for i in f.evidence_ids},
            " ".join(f.cause for f in supported),
        )
        # A burst of errors or slowness that held minutes and went away by itself, with
        # evidence read and nothing in it explaining the burst: a blip, not a stock cause.
        blip = (
            evidence_read
            and family.category in _BLIP_SYMPTOMS
            and not any(f.explains for f in supported)
            and _self_resolved_briefly(recovery)
        )
        inconclusive = no_data or unexplained or blip
        severity = severity_of(alert, family)
        if recovery is not None and not recovery.cause_persists:
            severity = "info"
        elif severity == "critical" and _planned(family, supported):
            severity = "warning"  # planned work: worth knowing, nobody needs waking
        elif severity == "critical" and (cache in supported or flapping in supported):
            # Reclaimable page cache, or a value hovering at the threshold: the alert measures
            # no outage; worth fixing in working hours, nobody needs waking.
            severity = "warning"
        where = scope(alert)
        read_runbooks = [i.id for i in runbook_items if i.detail != LINK_ONLY_DETAIL]
        restarted = findings.restarts(prom)
        # How long it held, for the inconclusive answer: a blip that went away by itself, or
        # (firing) a spike so far.
        held = (
            f" It held {max(recovery.fired_seconds, 60) / 60:.0f} min and resolved by itself: a "
            "transient burst with nothing in the evidence behind it; watch whether it recurs."
            if blip and recovery
            else _held_briefly(prom)
        )
        causes = self._causes(
            family, found, prom, logs, supported, inconclusive, read_runbooks, restarted, held
        )
        remediation = self._remediation(alert, family, where, runbook_items, flapping, supported)
        summary = self._summary(alert, family, severity, where, evidence, inconclusive)
        if recovery is not None:
            summary += " " + recovery.detail
        if news is not None:
            summary += " " + news
        scrub = self.scrubber.scrub
        return AnalysisResult(
            summary=scrub(summary),
            severity=severity,
            probable_causes=[c.model_copy(update={"cause": scrub(c.cause)}) for c in causes],
            remediation=[scrub(step) for step in remediation],
            runbook_urls=runbook_links(alert, evidence),
            inconclusive=inconclusive,
            # Inconclusive names no root-cause family (the summary still says what it measures).
            category=UNKNOWN.category
            if inconclusive
            else categories.cause_category(family.category, _category_basis(supported, restarted)),
            engine="rules",
            recovery=recovery.model_copy(update={"detail": scrub(recovery.detail)})
            if recovery
            else None,
        )

    def _causes(
        self,
        family: Family,
        found: Classification,
        prom: list[EvidenceItem],
        logs: list[EvidenceItem],
        extra: list[findings.Finding],
        inconclusive: bool,
        runbook_ids: list[str],
        restarted: tuple[EvidenceItem, SeriesStats] | None,
        held: str = "",
    ) -> list[ProbableCause]:
        """What the evidence found first, then the family's causes, best supported first.

        A family cause cites the alert's own series and the ranked logs that support it. The
        family's other causes fall back to the alert's runbook (read, not just linked): it
        states what the alert means and how to tell these causes apart. It adds no confidence.
        ``held``: how long an inconclusive alert's condition held, said after it.
        """
        base = {"expression": 0.6, "name": 0.45, "none": 0.2}[found.matched_by]
        if inconclusive:
            base = min(base, 0.3)
        log_ids = [i.id for i in logs if i.kind == "log_templates" and i.templates]
        own = [i.id for i in prom if i.kind == "alert_expression"] or [i.id for i in prom[:1]]
        support = 0.1 * bool(prom) + 0.1 * bool(log_ids)
        main = family.causes[0]
        if inconclusive and family is not UNKNOWN:
            # The family says what the alert measures, not why: no stock cause as a guess.
            main = (
                f"Inconclusive: the alert reports {family.title}, but no metric or log "
                "evidence shows why." + held
            )
        elif family.category == "container_crash" and restarted and (restarted[1].peak or 0) == 0:
            # Never a "crash loop" the restart counter does not show.
            main = "The container stopped or was removed and did not restart."
        explained = any(f.explains and f.confidence >= 0.6 for f in extra)
        if explained and not inconclusive:
            # The evidence names the cause: the family's stock guess would only contradict it.
            main = f"The alert reports {family.title}; the cause the evidence names is above."
        observed = findings.first_series_line(prom)
        if observed:
            main += f" Observed: {observed}."
        confidence = min(0.9, base + support)
        if explained:
            # The evidence names the cause: the family's own sentence is second to it.
            confidence = min(confidence, 0.55)
        causes = [
            ProbableCause(
                cause=main,
                confidence=round(confidence, 2),
                evidence_ids=(own + log_ids) or list(runbook_ids),
            )
        ]
        for finding in extra:
            causes.append(
                ProbableCause(
                    cause=finding.cause,
                    confidence=finding.confidence,
                    evidence_ids=list(finding.evidence_ids),
                )
            )
        # With a cause the evidence names, the family's other stock guesses are noise.
        for other in family.causes[1:] if not (inconclusive or explained) else ():
            causes.append(
                ProbableCause(
                    cause=other,
                    confidence=round(max(0.1, base - 0.3), 2),
                    evidence_ids=list(runbook_ids),
                )
            )
        causes.sort(key=lambda c: -c.confidence)
        return causes

    def _remediation(
        self,
        alert: Alert,
        family: Family,
        where: str,
        runbook_items: list[EvidenceItem],
        flapping: findings.Finding | None,
        supported: list[findings.Finding],
    ) -> list[str]:
        steps: list[str] = []
        if flapping:
            steps.append(
                "Tune the rule before chasing an incident: raise `for:` or move the threshold "
                "away from the value's normal range so it stops flapping."
            )
        # What the evidence found comes first; some findings make the generic steps wrong.
        steps += list(dict.fromkeys(f.remedy for f in supported if f.remedy))
        if not any(f.replaces_steps for f in supported):
            steps += _family_steps(alert, family, where)
        if runbook_items:
            steps.append(f"Follow the runbook ({runbook_items[0].query}).")
        return steps

    def _summary(
        self,
        alert: Alert,
        family: Family,
        severity: Severity,
        where: str,
        evidence: list[EvidenceItem],
        inconclusive: bool,
    ) -> str:
        name = _label(alert, "alertname") or "An alert"
        state = "resolved" if alert.status == "resolved" else "firing"
        subject = target(alert)
        # "on container storefront", not "on container container storefront".
        on = subject if subject.startswith(f"{where} ") else f"{where} {subject}"
        text = f"{name} ({severity}, {state}) on {on}: {family.title}."
        stated = alert.annotations.get("summary") or alert.annotations.get("description")
        if stated:
            said = stated.strip()[:300]
            text += f" The alert says: {said}" + ("" if said[-1:] in ".!?" else ".")
        missing = [i.source for i in evidence if i.status == "unavailable"]
        if missing:
            text += f" Unavailable evidence: {', '.join(sorted(set(missing)))}."
        if inconclusive:
            text += (
                " Inconclusive: no metric or log evidence supports a root cause; "
                "check the target directly."
            )
        return text


def _family_steps(alert: Alert, family: Family, where: str) -> list[str]:
    """The family's generic steps, with the ones for the kind of target first."""
    steps: list[str] = []
    name = _label(alert, "name") or _label(alert, "container") or "NAME"
    if where == "container":
        steps += [s.replace("NAME", name) for s in family.container_steps]
    elif where == "host":
        steps += list(family.host_steps)
    elif where == "nginx":
        steps.append(
            "Check nginx: `nginx -t`, its error log, and that stub_status answers "
            "(the exporter reports nginx_up == 0 when it cannot)."
        )
    return steps + list(family.remediation)


# Families whose alert measures a root cause itself: a certificate's time left, a clock's
# offset, a failed job, an OOM kill, time in garbage collection, a reboot, lock waits. Their
# own series holding the condition supports that cause, even when why it happened (a renewal
# that failed, a time server out of reach) is not in the evidence.
MEASURED_CAUSES = frozenset(
    {
        "certificate_expiry",
        "clock_skew",
        "dns",
        "tls",
        "failed_job",
        "oom_killed",
        "garbage_collection",
        "reboot",
        "lock_contention",
    }
)


# Symptoms that come and go in short bursts (a few failed or slow requests).
_BLIP_SYMPTOMS = frozenset({"error_rate", "latency"})
# A resolved alert that fired at most this long is a burst.
BLIP_SECONDS = 600.0


def _self_resolved_briefly(recovery: Recovery | None) -> bool:
    """Resolved within ``BLIP_SECONDS``, nothing still wrong after it, and nobody did
    anything just before it recovered (no act read as it recovered)."""
    return (
        recovery is not None
        and recovery.fired_seconds <= BLIP_SECONDS
        and not recovery.cause_persists
        and "loki-recovery" not in recovery.evidence_ids
    )


def _measures_cause(found: Classification, family: Family, prom: list[EvidenceItem]) -> bool:
    """The alert's expression measures a cause (``MEASURED_CAUSES``) and its series has data."""
    if family is not found.family or found.matched_by != "expression":
        return False
    if family.category not in MEASURED_CAUSES:
        return False
    own = findings.own_series(prom, "alert_expression")
    return own is not None and own[1].current is not None


def _category_basis(
    supported: list[findings.Finding], restarted: tuple[EvidenceItem, SeriesStats] | None
) -> list[findings.Finding]:
    """The findings that may name the category: a container restarting again and again did
    not stop for good, whatever signal its first stop was (a deploy replacing it)."""
    looping = restarted is not None and (restarted[1].peak or 0.0) >= 2
    return [f for f in supported if not (looping and f.topic == "shutdown")]


def _one_per_topic(found: list[findings.Finding]) -> list[findings.Finding]:
    """Of several findings on one topic (a deploy seen in the metrics and in the logs), the
    most confident; findings without a topic all stay."""
    best: dict[str, findings.Finding] = {}
    for finding in found:
        known = best.get(finding.topic)
        if finding.topic and (known is None or finding.confidence > known.confidence):
            best[finding.topic] = finding
    return [f for f in found if not f.topic or best[f.topic] is f]


def _first(found: list[findings.Finding], family: str) -> findings.Finding | None:
    return next((f for f in found if f.family == family), None)


def resolved_when(ends: datetime, fired_seconds: float) -> str:
    return f"Resolved at {ends.strftime('%H:%M:%S UTC')} after {fired_seconds / 60:.0f} min"


def recovery_of(
    alert: Alert, evidence: list[EvidenceItem], cited: set[str], quoted: str = ""
) -> Recovery | None:
    """For a resolved alert: when it recovered, and whether its cause is still there.

    The cause persists when the alert's own condition holds again after endsAt (its series
    has points then) or when the log template a cause quotes (``quoted``: the causes' text)
    keeps being logged after endsAt. Any other line of a cited item proves nothing: healthy
    traffic goes on after a recovery, and background lines go on whatever happens. Shared by
    both engines (the llm engine passes the ids the model cited and its causes).
    """
    if alert.status != "resolved" or alert.ends_at is None:
        return None
    ok = [item for item in evidence if item.status == "ok"]
    prom = [i for i in ok if i.source == "prometheus" or i.kind == "alert_expression"]
    logs = [i for i in ok if i.source == "loki" and i.kind != "alert_expression"]
    ends = alert.ends_at if alert.ends_at.tzinfo else alert.ends_at.replace(tzinfo=UTC)
    starts = alert.starts_at if alert.starts_at.tzinfo else alert.starts_at.replace(tzinfo=UTC)
    fired = max(0.0, (ends - starts).total_seconds())
    end_ts = ends.timestamp()
    after: list[str] = []
    ids: list[str] = []
    own = findings.own_series(prom, "alert_expression")
    if own and _holds_after(own[1], end_ts):
        after.append(f"its condition holds again after the resolution ({own[0].id})")
        ids.append(own[0].id)
    elif not_back := _value_not_back(prom, starts.timestamp(), end_ts):
        after.append(not_back[1])
        ids.append(not_back[0])
    elif own and (sibling := _still_held_on_same_machine(alert, own[0], end_ts)):
        after.append(
            f"the same condition still holds on {sibling} after it ({own[0].id}): what they "
            "share is likely still wrong, and this one may only have stopped being exercised"
        )
        ids.append(own[0].id)
    elif filling := findings.still_filling_after(prom, end_ts):
        after.append(filling[1])
        ids.append(filling[0])
    elif reset := findings.reset_at_recovery(prom, end_ts):
        after.append(
            f"it cleared when the memory that had climbed steadily fell at once at "
            f"{findings._clock(reset[1])} ({reset[0]}), a restart or a kill: what grew was "
            "released, not fixed, and will climb again"
        )
        ids.append(reset[0])
    elif own and findings.intermittent_condition(prom):
        after.append(
            f"it held in {own[1].runs} separate stretches in the window ({own[0].id}): it "
            "flaps and will likely fire again"
        )
        ids.append(own[0].id)
    for item, template in findings.templates(logs):
        if item.id not in cited or template.last_seen <= end_ts + 60:
            continue
        # The causes quote a line clipped (its time stamp dropped, its middle cut).
        if findings.background(template) or findings._clip(template.example)[:60] not in quoted:
            continue
        after.append(f"'{template.example[:120]}' is still logged after it ({item.id})")
        ids.append(item.id)
        break
    when = resolved_when(ends, fired)
    if done := _done_before_recovery(logs, end_ts):
        act, at = findings._clip(done[1].example), findings._clock(done[1].last_seen)
        when += f"; just before, '{act}' at {at}"
        ids.append(done[0].id)
    if after:
        detail = f"{when}, but the cause is still there: {'; '.join(after)}."
    elif not (prom or logs) and _sources_were_asked(evidence):
        # Nothing was read: the alert's own end is the only fact, not a checked recovery.
        down = sorted({i.source for i in evidence if i.source in ("prometheus", "loki")})
        detail = (
            f"{when}; {' and '.join(down)} could not be read, so whether the cause is gone "
            "was not checked: confirm it before closing."
        )
    else:
        detail = (
            f"{when}; it has recovered and nothing in the evidence shows the cause still "
            "present, so this is informational unless it recurs."
        )
    return Recovery(
        recovered_at=ends,
        fired_seconds=fired,
        cause_persists=bool(after),
        detail=detail,
        evidence_ids=ids,
    )


# Back under the threshold but still more than this share of the way from the level before
# the alert to the threshold: only partly recovered.
PARTLY_BACK_SHARE = 0.5


def _value_not_back(
    prom: list[EvidenceItem], starts_ts: float, end_ts: float
) -> tuple[str, str] | None:
    """(evidence id, words) when a resolved alert's value (its expression without the
    threshold, ``alert_value``) did not go back to its level before the alert: it only fell
    under the threshold, or it stopped being reported, which also ends an alert."""
    value = findings.own_series(prom, "alert_value")
    expression = findings.own_series(prom, "alert_expression")
    if not value or not value[1].matches_alert:
        return None
    item, s = value
    before = [v for ts, v in s.points if ts < starts_ts - BRIEF_SECONDS]
    after = [v for ts, v in s.points if ts > end_ts + 60]
    window_end = item.window_end or 0.0
    if not after and before and s.last_seen and window_end - end_ts >= 180:
        if end_ts - 300 <= s.last_seen <= end_ts + 60:
            return item.id, (
                f"its value has not been reported since {findings._clock(s.last_seen)} "
                f"({item.id}): it resolved because the series disappeared (the target or its "
                "exporter stopped reporting), not because the value recovered"
            )
        return None
    limit = expression[0].threshold if expression else None
    if not (before and after and limit) or limit.op not in (">", ">=", "<", "<="):
        return None
    sign = 1.0 if limit.op.startswith(">") else -1.0
    base, now = statistics.median(before), statistics.median(after)
    room = sign * (limit.value - base)
    if room <= 0 or sign * (now - base) <= PARTLY_BACK_SHARE * room:
        return None
    return item.id, (
        f"its value is under the threshold but not back to its level before the alert "
        f"(now {fmt(now)}, {fmt(base)} before it, threshold {fmt(limit.value)}; {item.id})"
    )


def _holds_after(series: SeriesStats, end_ts: float) -> bool:
    """The alert expression's series has points (its condition holds) after the alert ended."""
    return any(ts > end_ts + 60 for ts, _ in series.points)


# Labels naming the machine a series was measured on.
_MACHINE_KEYS = ("instance", "node", "nodename", "host", "hostname")


def _still_held_on_same_machine(alert: Alert, item: EvidenceItem, end_ts: float) -> str:
    """Another series of the alert's own expression, on the same machine, that still holds
    after the alert ended (e.g. a second NFS export of one client, a second disk of one host):
    a shared cause is not gone. Returns the other series' distinguishing labels, or ''."""
    machine = {k: alert.labels[k] for k in _MACHINE_KEYS if alert.labels.get(k)}
    if not machine:
        return ""  # a service-wide alert: other series are other services
    for series in item.series:
        if series.matches_alert or any(series.labels.get(k) != v for k, v in machine.items()):
            continue
        if not _holds_after(series, end_ts):
            continue
        differ = [
            f"{k}={v}"
            for k, v in sorted(series.labels.items())
            if k not in machine and alert.labels.get(k) not in (None, v)
        ]
        if differ:
            return ", ".join(differ) + f" of the same {'/'.join(machine.values())}"
    return ""


# An operator's hand in what ended it, before any automatic restart or start.
_OPERATOR = re.compile(r"COMMAND=|\bkill\b|systemctl |roll(?:ed)? ?back", re.I)


def _done_before_recovery(
    logs: list[EvidenceItem], end_ts: float
) -> tuple[EvidenceItem, LogTemplate] | None:
    """The act (``recovery_acts``) nearest before the alert recovered, an operator's first."""
    acts = [
        (item, t)
        for item in logs
        if item.kind == "recovery_acts"
        for t in item.templates
        if t.first_seen <= end_ts + 30
    ]
    operator = [a for a in acts if _OPERATOR.search(a[1].example)]
    return max(operator or acts, key=lambda a: a[1].first_seen, default=None)


# A condition that has held for less than this is a short spike so far.
BRIEF_SECONDS = 600.0


def _held_briefly(prom: list[EvidenceItem]) -> str:
    """For an unexplained alert whose condition has held only minutes: say so, since a short
    spike with nothing behind it often clears by itself."""
    own = findings.own_series(prom, "alert_expression")
    if not own or not own[1].points:
        return ""
    s = own[1]
    if s.trend == "rising" or (
        s.current is not None and s.current >= (s.peak or 0) > 1.05 * (s.minimum or 0)
    ):
        return ""  # still growing (a backlog): no spike
    first, last = own[1].points[0][0], own[1].points[-1][0]
    held = last - first
    window = own[0].window_start or first
    if held >= BRIEF_SECONDS or first - window < BRIEF_SECONDS:
        return ""  # long, or true since before the window: no spike to speak of
    return (
        f" Its condition has held only {max(held, 60) / 60:.0f} min (since "
        f"{findings._clock(first)}): a short spike so far, which may clear by itself; watch "
        "whether it persists before acting."
    )


def _sources_were_asked(evidence: list[EvidenceItem]) -> bool:
    """True when Prometheus or Loki was configured and queried (and had nothing to say).

    Without configured sources (the offline demo) the expression alone is all there is to
    go on; with configured sources that came back empty, any root cause would be a guess.
    """
    for item in evidence:
        if item.source not in ("prometheus", "loki"):
            continue
        if item.status == "unavailable" and "is not set" not in item.detail:
            return True
        if item.status == "empty" and item.query:
            return True
    return False


def runbook_links(alert: Alert, evidence: list[EvidenceItem]) -> list[str]:
    """The runbook_url annotation and every runbook found as evidence, without duplicates."""
    runbook_items = [i for i in evidence if i.source == "runbook" and i.status == "ok"]
    urls: list[str] = []
    annotated = alert.annotations.get("runbook_url", "").strip()
    if annotated:
        urls.append(annotated)
    for item in runbook_items:
        if item.query and item.query not in urls:
            urls.append(item.query)
    return urls

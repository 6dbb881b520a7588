"""What the typed evidence says, read for the rules engine.

Each reader looks at the typed statistics of one kind of series (``SeriesStats``) or at the
ranked log templates (``LogTemplate``) and returns a ``Finding`` that states what it saw, with
the numbers, and names the evidence items, so the rules engine can cite them. Nothing here
guesses beyond the evidence: no match, no finding.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from aiops_analyzer.evidence.anomaly import kendall_tau, theil_sen_slope
from aiops_analyzer.evidence.logline import shorten
from aiops_analyzer.evidence.logrank import CRON_COMMAND, TAGS, UNIT_START, is_background
from aiops_analyzer.evidence.missing_path import missing_path
from aiops_analyzer.evidence.oom_kill import OomKill, read_oom_kill
from aiops_analyzer.evidence.series import fmt, label_text
from aiops_analyzer.evidence.target import host_name
from aiops_analyzer.schemas import EvidenceItem, LogTemplate, SeriesStats

MAX_QUOTED = 160
# A container series that stops this many steps (or more) before the window ends: it vanished.
GONE_AFTER_SECONDS = 150.0


@dataclass(frozen=True)
class Finding:
    cause: str
    confidence: float
    evidence_ids: tuple[str, ...]
    # A root-cause family the evidence points to, when it overrides the alert's own.
    family: str = ""
    # False for context (when it began, what did not happen) that names no cause.
    explains: bool = True
    # A step this finding calls for; with ``replaces_steps`` the family's generic steps
    # (e.g. "raise the limit") would be wrong advice and are left out.
    remedy: str = ""
    replaces_steps: bool = False
    # What the finding is about (a log tag such as "deploy" or "clock"): of two findings on
    # one topic, the engine keeps the better supported.
    topic: str = ""


# Of a line too long to quote whole, keep its start (what logged it) and its end, where the
# reason usually is ("... server error (FATAL: sorry, too many clients already)").
_CLIP_HEAD = 70


# A TLS failure that is a certificate's dates (expired, not yet valid, a renewal that failed),
# not its trust chain or host name: the cause is the certificate's expiry.
_CERT_DATES = re.compile(r"expire|not yet valid|notAfter|renew", re.I)


def log_topic(tag: str, line: str) -> str:
    """The topic of a tagged line: ``certificate`` for a TLS line about a certificate's dates."""
    return "certificate" if tag == "tls" and _CERT_DATES.search(line) else tag


def _clip(line: str) -> str:
    return shorten(line, MAX_QUOTED, head=_CLIP_HEAD)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S UTC")


def of_kind(items: list[EvidenceItem], kind: str) -> list[EvidenceItem]:
    return [i for i in items if i.kind == kind and i.status == "ok"]


def own_series(items: list[EvidenceItem], kind: str) -> tuple[EvidenceItem, SeriesStats] | None:
    """The first series of a kind that belongs to the alert (items put those first)."""
    for item in of_kind(items, kind):
        for series in item.series:
            if series.matches_alert:
                return item, series
        if item.series:
            return item, item.series[0]
    return None


def templates(logs: list[EvidenceItem]) -> list[tuple[EvidenceItem, LogTemplate]]:
    return [(item, t) for item in of_kind(logs, "log_templates") for t in item.templates]


def tagged(logs: list[EvidenceItem], *tags: str) -> tuple[EvidenceItem, LogTemplate] | None:
    """The best-ranked template carrying one of ``tags``."""
    for item, template in templates(logs):
        if any(tag in template.tags for tag in tags):
            return item, template
    return None


# --- metrics ---------------------------------------------------------------------------------
# An alert condition that held in this many separate stretches of the window flaps.
FLAPPING_RUNS = 3


def intermittent_condition(prom: list[EvidenceItem]) -> Finding | None:
    """The alert expression held in several separate stretches: a flapping alert."""
    found = own_series(prom, "alert_expression")
    if found and found[1].runs >= FLAPPING_RUNS:
        item, series = found
        return Finding(
            "The alert condition held only intermittently "
            f"({series.runs} separate stretches in the window): the value hovers around the "
            "threshold, so the alert flaps. This points to rule tuning (threshold or `for:`) "
            "rather than a sustained outage.",
            0.6,
            (item.id,),
        )
    return None


def vanished(series: SeriesStats, window_end: float) -> bool:
    return series.last_seen is not None and window_end - series.last_seen > GONE_AFTER_SECONDS


def memory_at_limit(
    prom: list[EvidenceItem],
    window_end: float,
    *,
    container_gone: bool = False,
    stopped: bool = False,
) -> Finding | None:
    """Memory at the limit, then a sharp fall or the container gone: the kernel OOM-killed it.

    ``container_gone``: the alert itself says the container disappeared (its series may still
    show the last value for Prometheus' 5-minute lookback). ``stopped``: its logs say it shut
    down in an orderly way (a SIGTERM handled); an OOM kill (SIGKILL) leaves no such line, so
    unless its OOM counter rose, the fall was that stop.
    """
    found = own_series(prom, "container_memory_ratio")
    if not found:
        return None
    item, s = found
    peak = s.peak or 0.0
    if peak < 0.9:
        return None
    if stopped and not _oom_killed_meanwhile(prom):
        return None
    if s.drops >= 1 and not _fell_without_restart(prom):
        return Finding(
            f"Memory reached {peak:.0%} of the container's memory limit and fell sharply "
            f"{s.drops} time(s): the kernel most likely OOM-killed the process at the limit "
            "and it restarted.",
            0.75,
            (item.id,),
            "oom_killed",
        )
    last = s.current or 0.0
    if last >= 0.9 and (container_gone or vanished(s, window_end)):
        return Finding(
            f"The container's memory working set was at {last:.1%} of its memory limit when "
            f"it went away (last sample {_clock(s.last_seen or 0.0)}): it vanished at the "
            "limit, the signature of an OOM kill.",
            0.75,
            (item.id,),
            "oom_killed",
        )
    return None


def _fell_without_restart(prom: list[EvidenceItem]) -> bool:
    """The container's restart counter stayed at zero and its OOM counter did not rise: its
    memory fell (freed, a cache dropped, a child process ended) with no kill of the container."""
    restarted = own_series(prom, "container_restarts")
    if restarted is None or (restarted[1].peak or 0.0) > 0:
        return False
    return not _oom_killed_meanwhile(prom)


def pod_oom_killed(prom: list[EvidenceItem]) -> Finding | None:
    """kube-state-metrics says the container's last run ended OOMKilled."""
    for item in of_kind(prom, "pod_last_terminated"):
        for series in item.series:
            if series.labels.get("reason") == "OOMKilled" and (series.peak or 0.0) > 0:
                container = series.labels.get("container", "the container")
                return Finding(
                    f"Kubernetes reports that {container}'s last run ended OOMKilled "
                    "(kube_pod_container_status_last_terminated_reason): the kernel killed it "
                    "at its memory limit (exit code 137), and the kubelet restarts it.",
                    0.85,
                    (item.id,),
                    "oom_killed",
                )
    return None


def last_words(logs: list[EvidenceItem]) -> Finding | None:
    """What a process killed for its memory was doing: its newest fresh line that is not a
    start-up banner, a stop or the kill itself (a full reindex, a large export, a batch)."""
    fresh = [
        (item, t)
        for item, t in templates(logs)
        # The kernel's lines around a kill are its report (usage, limit), not the process's.
        if t.novelty in ("new", "surging")
        and not {"deploy", "oom", "shutdown", "kernel"} & set(t.tags)
    ]
    if not fresh:
        return None
    item, template = max(fresh, key=lambda found: found[1].last_seen or 0.0)
    return Finding(
        f"Its last lines before the kill say what it was doing: '{_clip(template.example)}' "
        f"(last at {_clock(template.last_seen or 0.0)}).",
        0.5,
        (item.id,),
        explains=False,
    )


# The value of a setting: what follows its key (``addr=seatmap-svc:8081``, ``"port": 8081``).
_SETTING_VALUE = re.compile(r"[=:]\s*\"?([\w.-]+(?::\d{2,5})?)\"?,?$")
_PORT = re.compile(r":(\d{2,5})$")


def changed_setting(logs: list[EvidenceItem]) -> Finding | None:
    """A setting the service logs at each start or reload changed just before its calls began
    to fail, and the failures name the new value (a port nothing listens on, a host name that
    does not resolve): a configuration mistake, not the dependency's outage."""
    found = templates(logs)
    failing = [
        t
        for _, t in found
        if t.novelty in ("new", "surging") and {"network", "error", "dns", "tls"} & set(t.tags)
    ]
    for item, template in found:
        if not template.variant or not template.variant_of:
            continue
        old_words = template.variant_of.split()
        for new_word, old_word in zip(template.variant.split(), old_words, strict=False):
            value = _SETTING_VALUE.search(new_word)
            if new_word == old_word or value is None:
                continue
            port = _PORT.search(value.group(1))
            needles = [value.group(1)] + ([f":{port.group(1)}"] if port else [])
            failure = next(
                (t for t in failing if any(n in t.example for n in needles) and t is not template),
                None,
            )
            if failure is None:
                continue
            return Finding(
                f"A configuration change just before the failures set a new value: "
                f"'{_clip(template.variant)}' (before: '{_clip(template.variant_of)}'). Since "
                f"then the calls to it fail: '{_clip(failure.example)}' ({failure.count}x from "
                f"{_clock(failure.first_seen)}). The new value is wrong, not the dependency.",
                0.8,
                (item.id,),
                "misconfiguration",
                remedy=f"Restore the previous value ({old_word}) or correct what set the new one "
                "(the configuration file, its template or variables), then reload and watch the "
                "calls succeed.",
                topic="config",
            )
    return None


# What a container's exit code says (128 + n: killed by signal n).
_EXIT_CODES = {
    1: "the process exited on an error of its own (its last logs, `kubectl logs --previous`, "
    "say which)",
    2: "the process exited on a usage or configuration error (a bad flag or setting)",
    126: "the command could not be executed (permissions, a missing interpreter)",
    127: "the command was not found in the image (a wrong entrypoint or path)",
    137: "it was killed with SIGKILL (the OOM killer, or a kill after the grace period)",
    139: "it crashed on a segmentation fault (SIGSEGV)",
    143: "it was stopped with SIGTERM (a shutdown asked by the kubelet or an operator)",
}


def pod_last_exit(prom: list[EvidenceItem]) -> Finding | None:
    """How the container's last run ended (kube-state-metrics' reason and exit code): context
    for a crash loop, not a cause; OOMKilled is ``pod_oom_killed``'s."""
    codes = [(i, s) for i in of_kind(prom, "pod_exit_code") for s in i.series]
    reasons = [
        (i, s)
        for i in of_kind(prom, "pod_last_terminated")
        for s in i.series
        if (s.peak or 0.0) > 0 and s.labels.get("reason") not in (None, "", "OOMKilled")
    ]
    if not codes and not reasons:
        return None
    code = int(codes[0][1].current) if codes and codes[0][1].current is not None else None
    if code == 0 or (code is None and not reasons):
        return None
    container = (reasons or codes)[0][1].labels.get("container", "the container")
    said = [f"reason {reasons[0][1].labels['reason']}"] if reasons else []
    said += [f"exit code {code}"] if code is not None else []
    meaning = _EXIT_CODES.get(code, "") if code is not None else ""
    return Finding(
        f"Kubernetes reports that {container}'s last run ended with {', '.join(said)} "
        "(kube_pod_container_status_last_terminated_*)" + (f": {meaning}." if meaning else "."),
        0.5,
        tuple(dict.fromkeys(i.id for i, _ in (*reasons, *codes))),
        explains=False,
    )


# Why a container cannot start, in the kubelet's words (kube-state-metrics' waiting reason).
_WAITING_REASONS = {
    "ImagePullBackOff": "the kubelet cannot pull its image{image}: the tag or repository does "
    "not exist (mistyped, or deleted by a registry cleanup), the registry refuses the node's "
    "credentials (imagePullSecrets), or it cannot be reached",
    "InvalidImageName": "its image name{image} is not a valid reference",
    "CreateContainerConfigError": "a ConfigMap or Secret (or a key in one) that it references "
    "does not exist",
    "CreateContainerError": "the runtime cannot create it (a volume, a mount or a name conflict)",
}
_WAITING_REASONS["ErrImagePull"] = _WAITING_REASONS["ImagePullBackOff"]


def pod_cannot_start(prom: list[EvidenceItem]) -> Finding | None:
    """kube-state-metrics says the container waits for a reason that is its configuration's."""
    images = {
        s.labels.get("container", ""): s.labels["image"]
        for item in of_kind(prom, "pod_image")
        for s in item.series
        if s.labels.get("image")
    }
    for item in of_kind(prom, "pod_waiting"):
        for series in item.series:
            reason = series.labels.get("reason", "")
            if reason not in _WAITING_REASONS or not (series.current or 0.0) > 0:
                continue
            container = series.labels.get("container", "")
            image = images.get(container, "")
            why = _WAITING_REASONS[reason].format(image=f" {image}" if image else "")
            return Finding(
                f"The container {container} cannot start ({reason}): {why}. Nothing "
                "will run until that is fixed; restarting the pod does not help.",
                0.8,
                (item.id,),
                "container_crash",
                remedy="`kubectl describe pod` for the kubelet's event naming the exact error; "
                + (
                    f"check that {image} exists in the registry (`crane manifest {image}` or "
                    "the registry's UI) and that the pod's imagePullSecrets can read it; "
                    "deploy a tag that exists."
                    if "Image" in reason
                    else "create the missing object or key, or fix the reference."
                ),
                replaces_steps=True,
                topic="config",
            )
    return None


def oom_counters(prom: list[EvidenceItem]) -> Finding | None:
    for kind, what in (
        ("container_oom_events", "the container's OOM event counter"),
        ("host_oom_kills", "the host's OOM kill counter"),
    ):
        found = _counter_rose(prom, kind)
        if found is not None:
            item, s = found
            return Finding(
                f"{what[0].upper() + what[1:]} rose from {fmt(s.minimum)} to {fmt(s.peak)} in "
                "the window: the kernel killed a process for running out of memory.",
                0.8,
                (item.id,),
                "oom_killed",
            )
    return None


def oom_victim(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """The process the kernel's OOM-kill lines name, and what ran out: a cgroup's own limit
    (a container, a unit) or the machine's memory."""
    found = [(item, t) for item, t in templates(logs) if "oom" in t.tags]
    victim = read_oom_kill(t.example for _, t in found)
    if victim is None:
        return None
    log_item = next((item for item, t in found if victim.pid in t.example), found[0][0])
    ids = [log_item.id]
    container = _victim_container(prom, victim)
    who = f"{victim.process} (pid {victim.pid})"
    if container is not None:
        item, s = container
        ids.append(item.id)
        name = s.labels.get("name") or victim.container_id[:12]
        limit = f" of {_bytes(s.limit)}" if s.limit else ""
        peak = f"; its working set peaked at {_bytes(s.peak)}" if s.peak else ""
        where = f"in container {name}, which reached its own memory limit{limit}{peak}"
        remedy = (
            f"Find what grew {name}'s memory just before the kill (the job or request it was "
            f"serving, `docker stats {name}`) before raising its limit."
        )
    elif victim.at_cgroup_limit:
        cgroup = (
            f"container {victim.container_id[:12]}"
            if victim.container_id
            else victim.unit or "its memory cgroup"
        )
        where = f"in {cgroup}, which reached its own memory limit (not the machine's memory)"
        remedy = f"Compare {cgroup}'s memory with its limit before raising it."
    elif victim.at_cgroup_limit is False:
        where = "because the machine ran out of memory (no cgroup limit was involved)"
        remedy = (
            "Find the process whose memory grew (`ps aux --sort=-rss`); add memory or limit it."
        )
    else:
        where = ""
        remedy = ""
    return Finding(
        f"The kernel's OOM killer killed {who}{' ' + where if where else ''}: "
        f"'{_clip(victim.line)}'.",
        0.85,
        tuple(ids),
        "oom_killed",
        remedy=remedy,
        topic="oom_victim",
    )


def oom_victim_elsewhere(prom: list[EvidenceItem], logs: list[EvidenceItem], name: str) -> bool:
    """The OOM kill the machine's kernel logged was in another container than ``name`` (a
    grouped delivery, or a neighbour on the same host)."""
    victim = read_oom_kill(t.example for _, t in templates(logs) if "oom" in t.tags)
    found = _victim_container(prom, victim) if victim else None
    # cAdvisor's name may embed the alert's (dockershim's k8s_<container>_<pod>_...).
    return bool(name and found and name not in found[1].labels.get("name", name))


def _victim_container(
    prom: list[EvidenceItem], victim: OomKill
) -> tuple[EvidenceItem, SeriesStats] | None:
    """The memory series of the container the kill names (``prometheus.oom_victim_queries``)."""
    if not victim.container_id:
        return None
    for item in of_kind(prom, "oom_victim_memory"):
        for series in item.series:
            if series.labels.get("name"):
                return item, series
    return None


# A runtime's own memory ceiling as its start-up lines print it: the JVM's -Xmx, Node's
# --max-old-space-size (in MiB).
_HEAP_FLAG = re.compile(r"-Xmx(\d+)([kKmMgGtT]?)\b|--max-old-space-size=(\d+)\b")
_UNIT_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def heap_above_limit(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """The runtime may grow its heap to at least the container's memory limit: the kernel's
    OOM killer ends it before its collector ever has to work hard (no OutOfMemoryError)."""
    limits = [
        (item, s)
        for kind in ("container_memory_working_set", "oom_victim_memory")
        for item in of_kind(prom, kind)
        for s in item.series
        if s.limit
    ]
    if not limits:
        return None
    for log_item, template in templates(logs):
        flag = _HEAP_FLAG.search(template.example)
        if flag is None:
            continue
        heap = (
            int(flag.group(1)) * _UNIT_BYTES[flag.group(2).lower()]
            if flag.group(1)
            else int(flag.group(3)) * 1024**2
        )
        item, s = limits[0]
        limit = s.limit or 0.0
        if heap < 0.9 * limit:
            return None
        return Finding(
            f"The heap may grow to {_bytes(heap)} "
            f"({flag.group(0)} in '{_clip(template.example)}'), "
            f"{'more than' if heap > limit else 'as much as'} the container's memory limit of "
            f"{_bytes(limit)}: with no room left for the runtime's other memory, the heap "
            "outgrows the cgroup and the kernel kills the process before the collector reclaims "
            "anything (no OutOfMemoryError).",
            0.8,
            (log_item.id, item.id),
            "oom_killed",
            remedy="Set the heap below the limit (about 75% of it: a smaller -Xmx, "
            "-XX:MaxRAMPercentage=75, a lower --max-old-space-size) or raise the limit.",
            topic="heap_limit",
        )
    return None


def page_cache(prom: list[EvidenceItem]) -> Finding | None:
    """Most of the memory charged to the container is page cache, which the kernel reclaims."""
    cache = own_series(prom, "container_memory_cache")
    rss = own_series(prom, "container_memory_rss")
    if not cache or not rss:
        return None
    (c_item, c), (r_item, r) = cache, rss
    if c.current is None or r.current is None or c.current <= 0:
        return None
    share = c.current / (c.current + r.current) if (c.current + r.current) else 0.0
    limit = c.limit or r.limit
    rss_of_limit = r.current / limit if limit else None
    if share < 0.5 or (rss_of_limit is not None and rss_of_limit > 0.7):
        return None
    if limit and (c.current + r.current) / limit < 0.5:
        return None  # far from its limit: the cache explains no memory alert, and none is due
    if _process_memory_grows(r) or _oom_killed_meanwhile(prom):
        return None  # the process grows, or the kernel killed instead of reclaiming: not cache
    of_limit = f" (RSS is only {rss_of_limit:.0%} of the limit)" if rss_of_limit else ""
    return Finding(
        f"Page cache, not the process, fills the memory: cache {_bytes(c.current)} is "
        f"{share:.0%} of the charged memory against RSS {_bytes(r.current)}{of_limit}. "
        # The action said positively: a notification read in a hurry should not carry the
        # wrong one ("raise the limit"), even negated.
        "The kernel reclaims page cache under pressure, so this is file I/O caching, not a "
        "leak: keep the memory limit as it is.",
        0.7,
        (c_item.id, r_item.id),
        remedy="Leave the memory limit as it is: page cache is reclaimed under pressure. Alert "
        "on RSS (or the working set minus inactive file pages) instead, and find which files "
        "the container reads or writes heavily if the cache churn itself is a problem.",
        replaces_steps=True,
    )


# A path in tmpfs or shared memory, whose pages count as cache but are freed only with the file.
_TMPFS_PATH = re.compile(r"/dev/shm\b|\btmpfs\b|/run/shm\b|\bshm_open\b|\bmemfd\b", re.I)  # noqa: S108
# The cache's climb in the window, as a share of the limit, that counts as growing; the share
# of it the working set took on (pages on no inactive file list); the working set's share of
# the limit at which the kernel would already be reclaiming ordinary cache.
CACHE_CLIMB_SHARE = 0.05
WORKING_SET_TOOK_SHARE = 0.8
UNRECLAIMED_AT = 0.85


def _climb(s: SeriesStats) -> float:
    return s.points[-1][1] - s.points[0][1] if len(s.points) > 1 else 0.0


def unreclaimed_cache(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """ "Cache" the kernel does not reclaim: it climbs, the working set (usage minus inactive
    file pages) climbs by as much up to the limit, and RSS does not. tmpfs and shared memory
    are counted as cache but live on the anonymous lists: they go only when their files are
    deleted, so the container heads for an OOM kill. A line naming /dev/shm says which."""
    cache = own_series(prom, "container_memory_cache")
    working = own_series(prom, "container_memory_working_set")
    rss = own_series(prom, "container_memory_rss")
    if not cache or not working or not rss:
        return None
    (c_item, c), (w_item, w), (_, r) = cache, working, rss
    limit = c.limit or w.limit or r.limit
    if not limit or w.current is None or r.current is None:
        return None
    grew = _climb(c)
    if grew < CACHE_CLIMB_SHARE * limit or _climb(w) < WORKING_SET_TOOK_SHARE * grew:
        return None
    if w.current / limit < UNRECLAIMED_AT or _process_memory_grows(r):
        return None
    # Files read over and over look the same in these numbers (active file pages, which the
    # kernel does reclaim): only the service's own word that it writes to tmpfs tells.
    written = next(
        ((item, t) for item, t in templates(logs) if _TMPFS_PATH.search(t.example)), None
    )
    if written is None:
        return None
    item, template = written
    return Finding(
        f"The page cache that fills the memory is not reclaimed: it grew by {_bytes(grew)} to "
        f"{_bytes(c.current or 0.0)} in the window and the working set, which leaves out the "
        f"inactive file pages the kernel would reclaim, grew with it to {w.current / limit:.0%} "
        f"of the limit, while RSS stayed at {_bytes(r.current)}. The service writes to tmpfs: "
        f"'{_clip(template.example)}' ({template.count}x in the window); tmpfs and "
        "shared-memory pages count as cache but cannot be reclaimed while their files exist, "
        "so they pile up until the container is OOM-killed.",
        0.75,
        (c_item.id, w_item.id, item.id),
        remedy="Find what grows in tmpfs (`docker exec NAME df -h /dev/shm /run`, "
        "`du -sh /dev/shm/*`; `shmem` in the cgroup's memory.stat) and delete or rotate it: "
        "restore the cleanup or retention that should remove those files. A higher limit "
        "only postpones the OOM kill.",
        replaces_steps=True,
        topic="shmem",
    )


# MemAvailable above this share of RAM: the host has room, whatever MemFree says.
ROOMY_AVAILABLE = 0.2


def _unit_started(logs: list[EvidenceItem]) -> tuple[EvidenceItem, LogTemplate, str] | None:
    """The newest service unit that started in the window and had not before it."""
    started = [
        (item, t, found.group(1))
        for item, t in templates(logs)
        if t.novelty == "new" and (found := UNIT_START.search(t.example))
    ]
    return max(started, key=lambda found: found[1].first_seen, default=None)


# A unit's own end: systemd's "Finished x.service", "x.service: Deactivated successfully",
# "x.service: Consumed 3h21min 7.4s CPU time" (what the job cost, when accounting is on).
_UNIT_END = re.compile(
    r"Finished ([\w@.-]+\.service)|([\w@.-]+\.service): (?:Deactivated|Succeeded)"
)
_UNIT_CPU = re.compile(r"([\w@.-]+\.service): Consumed (.+?) CPU time")
# How long before the alert a job may start and still be its load; how far from the recovery
# its end may be and still be why the alert resolved.
JOB_LEAD_SECONDS = 3600.0
JOB_END_NEAR_SECONDS = 900.0


def scheduled_job(
    logs: list[EvidenceItem], starts_ts: float, ends_ts: float | None = None
) -> Finding | None:
    """A job (a systemd unit, a cron command) that started in the hour before a resource
    alert, new against the hours before: its work is the likely load. For a resolved alert,
    the unit's "Finished" near the recovery says the load ended with it."""
    started = [
        (item, t, found.group(1))
        for item, t in templates(logs)
        if t.novelty == "new"
        and starts_ts - JOB_LEAD_SECONDS <= t.first_seen <= starts_ts + 300
        and (found := UNIT_START.search(t.example) or CRON_COMMAND.search(t.example))
    ]
    if not started:
        return None
    item, template, name = max(started, key=lambda found: found[1].first_seen)
    ids = [item.id]
    unit = name.endswith(".service")
    what = f"The unit {name}" if unit else f"cron's `{_clip(name)}`"
    lead = max(0.0, starts_ts - template.first_seen) / 60
    text = (
        f"{what} started at {_clock(template.first_seen)}, {lead:.0f} min before the alert "
        f"fired ('{_clip(template.example)}'), and had not in the hours before"
    )
    # The ends come from the ranked logs or, past the recent window, from what was read as the
    # alert recovered.
    read = [
        (i, t) for i in logs if i.kind in ("log_templates", "recovery_acts") for t in i.templates
    ]
    ended = [
        (i, t)
        for i, t in read
        if t.first_seen > template.first_seen
        and (unit_end := _UNIT_END.search(t.example))
        and name in (unit_end.group(1), unit_end.group(2))
    ]
    cpu = next(
        (
            (i.id, found.group(2))
            for i, t in read
            if (found := _UNIT_CPU.search(t.example)) and found.group(1) == name
        ),
        None,
    )
    confidence = 0.6
    if ended:
        end_item, end = max(ended, key=lambda found: found[1].first_seen)
        ids.append(end_item.id)
        text += f"; it finished at {_clock(end.first_seen)} ('{_clip(end.example)}')"
        if cpu:
            text += f" after using {cpu[1]} of CPU time"
            ids.append(cpu[0])
        if ends_ts is not None and abs(ends_ts - end.first_seen) <= JOB_END_NEAR_SECONDS:
            text += (
                f", and the alert resolved at {_clock(ends_ts)}: the job's own work was the "
                "load, and it is over"
            )
            confidence = 0.8
        text += "."
    else:
        text += ": its work is the likely load while it runs."
    return Finding(
        text,
        confidence,
        tuple(dict.fromkeys(ids)),
        remedy=f"Check what the job does and how long it runs (`systemctl status {name}`, "
        f"`journalctl -u {name}`; `systemd-cgtop` while it runs). If the load it puts on the "
        "machine matters, run it at a quieter time, lower its priority (`Nice=`, "
        "`CPUWeight=` or `CPUQuota=`, `IOWeight=` in the unit) or spread its work."
        if unit
        else "Check what the cron job does and how long it runs (`crontab -l` of its user, "
        "`/etc/cron.d`); run it at a quieter time or with `nice`/`ionice` if its load matters.",
        topic="scheduled_job",
    )


def _process_memory_grows(rss: SeriesStats) -> bool:
    """RSS climbing through the window (a third or more above its lowest): a leak beside the
    cache, which reclaiming the cache only postpones."""
    low = rss.minimum
    return (
        rss.trend == "rising"
        and rss.current is not None
        and low is not None
        and low > 0
        and rss.current >= 1.33 * low
    )


def _oom_killed_meanwhile(prom: list[EvidenceItem]) -> bool:
    """The container's OOM-event counter rose in the window: the kernel killed rather than
    reclaimed, so what filled the memory was not reclaimable cache (tmpfs, shared memory)."""
    return _counter_rose(prom, "container_oom_events") is not None


def _counter_rose(prom: list[EvidenceItem], kind: str) -> tuple[EvidenceItem, SeriesStats] | None:
    """The alert's own series of a counter ``kind``, when it rose within the window."""
    found = own_series(prom, kind)
    if found is None:
        return None
    s = found[1]
    return found if s.peak is not None and s.minimum is not None and s.peak > s.minimum else None


def host_page_cache(
    prom: list[EvidenceItem], expression: str, logs: list[EvidenceItem] | None = None
) -> Finding | None:
    """A host memory rule on MemFree counts the page cache as used; MemAvailable does not."""
    if "MemFree" not in expression or "MemAvailable" in expression:
        return None
    available = own_series(prom, "host_memory_available")
    if not available:
        return None
    item, s = available
    current = s.current
    if current is None:
        return None
    lowest = s.minimum if s.minimum is not None else current
    if current < ROOMY_AVAILABLE or lowest < ROOMY_AVAILABLE / 2:
        return None
    reader = _unit_started(logs or [])
    filled = (
        f" What filled it: {reader[2]} started at {_clock(reader[1].first_seen)} "
        f"('{_clip(reader[1].example)}'); a job that reads many files (a backup, a sync, an "
        "index build) leaves them in the cache."
        if reader
        else ""
    )
    return Finding(
        "Page cache, not memory pressure: the rule measures MemFree, which leaves out the "
        f"page cache the kernel hands back on demand, while MemAvailable is still {current:.0%} "
        f"of RAM (lowest {lowest:.0%} in the window). A Linux host with a warm "
        f"cache always looks nearly full by MemFree.{filled}",
        0.7,
        (item.id, *((reader[0].id,) if reader else ())),
        remedy="Do not add RAM or restart services for this: change the rule to "
        "`node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1` and confirm "
        "with `free -m` (the `available` column).",
        replaces_steps=True,
        topic="page_cache",
    )


def memory_exhaustion(
    prom: list[EvidenceItem], *, cpu_alert: bool, service_alert: bool = False
) -> Finding | None:
    """A host short of memory and swapping; behind a CPU alert, reclaim and swap stalls are
    the CPU time; behind a service's latency or errors (``service_alert``), the stalls are
    its slow requests."""
    available = own_series(prom, "host_memory_available")
    if not available or available[1].current is None or available[1].current > 0.05:
        return None
    cited = [available[0].id]
    signs = [f"MemAvailable is {available[1].current:.1%} of RAM"]
    for kind, label, floor in (
        ("host_swap_in", "pages swapped in at {v}/s", 1.0),
        ("host_memory_pressure", "tasks stalled on memory {p} of the time", 0.05),
        ("host_swap_used", "swap {p} used", 0.5),
    ):
        found = own_series(prom, kind)
        if found and found[1].current is not None and (found[1].peak or 0.0) >= floor:
            cited.append(found[0].id)
            value = found[1].peak or 0.0
            signs.append(label.format(v=fmt(value), p=f"{value:.0%}"))
    if len(signs) < 2:
        return None
    holder = _largest_process(prom, host_name(available[1].labels.get("instance", "")))
    if holder:
        cited.append(holder[0])
        signs.append(holder[1])
    if cpu_alert:
        text = (
            "The host is out of memory, not CPU: "
            + ", ".join(signs)
            + ". Page reclaim and swapping burn CPU and stall processes, so the CPU alert is a "
            "symptom of memory exhaustion."
        )
    elif service_alert:
        text = (
            "The machine the service runs on is out of memory and swapping: "
            + ", ".join(signs)
            + ". Swapping stalls every process on the machine, this service's requests "
            "included, so its latency and errors are a symptom of the machine's memory."
        )
    else:
        text = (
            "The host is out of memory and swapping: "
            + ", ".join(signs)
            + ". Swapping stalls every process on the host."
        )
    return Finding(
        text,
        0.75,
        tuple(cited),
        "memory_pressure",
        remedy="Find what holds the memory: `ps aux --sort=-rss | head` and `vmstat 5` (si/so "
        "columns); stop or limit it, or add RAM, before tuning anything for CPU"
        + (" or the service's worker count." if service_alert else "."),
        replaces_steps=cpu_alert or service_alert,
    )


def _largest_process(prom: list[EvidenceItem], host: str = "") -> tuple[str, str] | None:
    """(evidence id, words) of the process group holding the most resident memory, with how
    much it grew over the window, when process-exporter reports the host's processes."""
    for item in of_kind(prom, "host_process_memory"):
        sized = [s for s in item.series if s.current is not None and s.labels.get("groupname")]
        if not sized:
            continue
        top = max(sized, key=lambda s: s.current or 0.0)
        now, low = top.current or 0.0, top.minimum or 0.0
        grew = f", up from {_bytes(low)}" if now >= 1.5 * low and now - low >= 2**27 else ""
        name = top.labels["groupname"]
        return item.id, f"the largest process group is {name} at {_bytes(now)} resident{grew}"
    return _largest_instrumented(prom) or _largest_container(prom, host)


def _largest_instrumented(prom: list[EvidenceItem]) -> tuple[str, str] | None:
    """(evidence id, words) of the instrumented process (by scrape job) that grew the most
    over the window, or the largest, from the Prometheus clients' process collector."""
    for item in of_kind(prom, "host_instrumented_memory"):
        sized = [s for s in item.series if s.current and s.labels.get("job")]
        if not sized:
            continue
        top = max(sized, key=lambda s: ((s.current or 0.0) - (s.minimum or 0.0), s.current))
        now, low = top.current or 0.0, top.minimum or 0.0
        grew = f", up from {_bytes(low)}" if now >= 1.5 * low and now - low >= 2**27 else ""
        if not grew:
            top = max(sized, key=lambda s: s.current or 0.0)
            now = top.current or 0.0
        return item.id, (
            f"the process of job {top.labels['job']} holds {_bytes(now)} resident{grew}"
        )
    return None


def _largest_container(prom: list[EvidenceItem], host: str) -> tuple[str, str] | None:
    """(evidence id, words) of the container holding the most resident memory on ``host``:
    cAdvisor's containers there, or those of the only cAdvisor there is."""
    for item in of_kind(prom, "containers_memory_rss"):
        sized = [s for s in item.series if s.current is not None and s.labels.get("name")]
        cadvisors = {s.labels.get("instance", "") for s in sized}
        here = [s for s in sized if host and host_name(s.labels.get("instance", "")) == host]
        candidates = here or (sized if len(cadvisors) == 1 else [])
        if not candidates:
            continue
        top = max(candidates, key=lambda s: s.current or 0.0)
        return item.id, (
            f"the largest container is {top.labels['name']} at {_bytes(top.current or 0.0)} "
            "resident"
        )
    return None


# Steal above a tenth of the CPUs is a hypervisor short of CPU for its guests; a few percent
# is ordinary on shared cloud instances.
STEAL_SHARE = 0.10
# iowait of a quarter of the CPUs, or a disk busy 80% of the time: requests queue on the disk.
IOWAIT_SHARE = 0.25
DISK_BUSY_SHARE = 0.8
# Throttled in a quarter of the scheduler periods: the CPU quota caps the container.
THROTTLED_SHARE = 0.25


def _cpu_mode(prom: list[EvidenceItem], mode: str) -> tuple[EvidenceItem, SeriesStats] | None:
    for item in of_kind(prom, "host_cpu_modes"):
        for series in item.series:
            if series.labels.get("mode") == mode:
                return item, series
    return None


def _share_earlier(s: SeriesStats) -> str:
    """The share's level before it rose, as " (it was 3% earlier in the window)", if known."""
    before = s.baseline if s.baseline is not None else s.minimum
    return f" (it was {before:.0%} earlier in the window)" if before is not None else ""


def cpu_steal(prom: list[EvidenceItem]) -> Finding | None:
    """CPU time the hypervisor gave to other guests: a noisy neighbour, not this host's work."""
    found = _cpu_mode(prom, "steal")
    if not found or found[1].peak is None or found[1].peak < STEAL_SHARE:
        return None
    item, s = found
    rose = _share_earlier(s)
    return Finding(
        f"The hypervisor takes the CPU: steal time reached {s.peak:.0%} of the host's CPUs"
        f"{rose}. Other guests on the same physical machine (a noisy neighbour) or an "
        "exhausted CPU-credit balance leave this VM waiting; its own processes are not the "
        "cause.",
        0.7,
        (item.id,),
        remedy="Confirm with `top` (the `st` column) or `mpstat 5`; move the VM to another "
        "host or a dedicated/non-burstable instance type, or check its CPU credits, rather "
        "than profiling the application.",
        replaces_steps=True,
        topic="steal",
    )


def io_saturation(prom: list[EvidenceItem], *, disk_alert: bool = False) -> Finding | None:
    """CPU counted as busy while it waits on a saturated disk (iowait, io_time); for a disk
    I/O alert, the same numbers confirm the disk is saturated, not merely busy in bursts."""
    iowait = _cpu_mode(prom, "iowait")
    disks = [(item, s) for item in of_kind(prom, "host_disk_busy") for s in item.series]
    busiest = max(disks, key=lambda d: d[1].peak or 0.0, default=None)
    wait_peak = (iowait[1].peak or 0.0) if iowait else 0.0
    busy_peak = (busiest[1].peak or 0.0) if busiest else 0.0
    if wait_peak < IOWAIT_SHARE and busy_peak < DISK_BUSY_SHARE:
        return None
    signs: list[str] = []
    cited: list[str] = []
    if iowait and wait_peak >= IOWAIT_SHARE / 2:
        signs.append(f"the CPUs spent {wait_peak:.0%} of their time in iowait")
        cited.append(iowait[0].id)
    if busiest and busy_peak >= DISK_BUSY_SHARE / 2:
        device = busiest[1].labels.get("device", "a disk")
        signs.append(f"disk {device} was busy {min(busy_peak, 1.0):.0%} of the time")
        cited.append(busiest[0].id)
    if disk_alert:
        text = (
            "The disk is saturated, not just busy in bursts: "
            + " and ".join(signs)
            + ". Requests queue on the device and every process that touches it waits."
        )
    else:
        text = (
            "The disk, not the CPU, is the bottleneck: "
            + " and ".join(signs)
            + ". Processes blocked on I/O count as load and as non-idle CPU, so the alert "
            "measures a saturated disk."
        )
    return Finding(
        text,
        0.7,
        tuple(dict.fromkeys(cited)),
        remedy="Find who does the I/O: `iostat -x 5` (%util, await) and `sudo iotop -o`; "
        "move or throttle the heavy reader/writer (backups, compaction, a log storm) or give "
        "the volume more IOPS.",
        replaces_steps=True,
        topic="disk_io",
    )


def cpu_throttled(prom: list[EvidenceItem]) -> Finding | None:
    """The container's CPU quota, not the machine, caps it."""
    found = own_series(prom, "container_cpu_throttled")
    if not found or found[1].peak is None or found[1].peak < THROTTLED_SHARE:
        return None
    item, s = found
    cores = own_series(prom, "container_cpu")
    cited = [item.id]
    used = ""
    if cores and cores[1].current is not None:
        cited.append(cores[0].id)
        used = f" while it used {fmt(cores[1].current)} cores"
    name = s.labels.get("name") or s.labels.get("container")
    return Finding(
        f"The container{f' {name}' if name else ''}'s CPU limit throttles it: {s.peak:.0%} "
        "of its scheduler periods hit "
        f"the CFS quota{used}. It is capped by its cgroup quota, so requests wait for CPU "
        "even when the host has idle cores.",
        0.7,
        tuple(cited),
        remedy="Compare the CPU limit (`docker inspect -f "
        "'{{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}}' NAME`) with what it needs at "
        "peak: raise or remove the limit, or reduce the work (thread pools sized for the "
        "host's cores rather than the quota are a common cause).",
        replaces_steps=True,
        topic="throttling",
    )


INODE_REMEDY = (
    "Find the directories with the most files: `sudo du --inodes -x MOUNT | sort -n | tail`; "
    "remove or rotate the small files, or fix what creates them."
)


def inodes(prom: list[EvidenceItem], expression: str) -> Finding | None:
    """Inodes, not bytes, run out: many small files."""
    found = own_series(prom, "host_inodes_free")
    if not found or found[1].current is None:
        return None
    item, s = found
    free = found[1].current
    about_inodes = "files_free" in expression or "inode" in expression.lower()
    if free > 0.1 and not about_inodes:
        return None
    space = own_series(prom, "host_filesystem_available")
    cited = [item.id]
    free_space = ""
    if space and space[1].current is not None:
        if space[1].current < 0.1 and not about_inodes:
            return None  # bytes are short too: the ordinary case
        cited.append(space[0].id)
        free_space = f" while {space[1].current:.0%} of its space is free"
    return Finding(
        f"The filesystem runs out of inodes, not bytes: {free:.1%} of its inodes are "
        f"free{free_space} ({label_text(s.labels)}). Millions of small files (sessions, "
        "caches, a mail or spool queue) exhaust it; removing big files frees bytes, not inodes.",
        0.75,
        tuple(cited),
        remedy=INODE_REMEDY,
        replaces_steps=True,
    )


def inodes_behind_no_space(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """A service's "No space left on device" while a filesystem somewhere is out of inodes
    (the service's own machine is not named by its alert): the inodes, not the bytes."""
    said = next(
        ((i, t) for i, t in templates(logs) if "disk" in t.tags and not is_background(t)), None
    )
    low = [(i, s) for i in of_kind(prom, "fleet_inodes_low") for s in i.series]
    if said is None or not low:
        return None
    where = ", ".join(
        f"{s.labels.get('mountpoint', '?')} on {s.labels.get('instance', '?')} "
        f"({fmt((s.current or 0.0) * 100)}% free)"
        for _, s in low[:3]
    )
    return Finding(
        f"'{_clip(said[1].example)}' while a filesystem is out of inodes, not bytes: {where}. "
        "Millions of small files (sessions, caches, thumbnails, a spool) exhaust the inodes; "
        "the service fails to create any file there however much space is free.",
        0.7,
        (said[0].id, low[0][0].id),
        remedy=INODE_REMEDY,
        topic="inodes",
    )


def rebooted(prom: list[EvidenceItem]) -> Finding | None:
    """node_boot_time_seconds changed in the window: the host rebooted."""
    found = own_series(prom, "host_boot_time")
    if not found:
        return None
    item, s = found
    if s.peak is None or s.minimum is None or s.peak - s.minimum < 60:
        return None
    machine = s.labels.get("instance", "")
    before = (
        _clock(s.minimum)
        if s.peak - s.minimum < 86400
        else datetime.fromtimestamp(s.minimum, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    )
    return Finding(
        f"The host{f' ({machine})' if machine else ''} rebooted: its boot time moved to "
        f"{_clock(s.peak)} (node_boot_time_seconds was {before} before).",
        0.7,
        (item.id,),
        remedy=LOG_REMEDIES_REBOOT,
        topic="reboot",
    )


# A start-up line this soon after the machine booted is the boot's restart, not a release.
START_AFTER_BOOT_SECONDS = 900.0


def boot_moments(prom: list[EvidenceItem]) -> list[float]:
    """When the alert's machine (``host_boot_time``) or a machine of the fleet
    (``fleet_reboots``) booted in the window: node_boot_time_seconds' new values."""
    found = own_series(prom, "host_boot_time")
    moments = []
    if found and found[1].peak is not None and found[1].peak - (found[1].minimum or 0) >= 60:
        moments.append(found[1].peak)
    moments += [s.peak for i in of_kind(prom, "fleet_reboots") for s in i.series if s.peak]
    return moments


# A boot this long after the alert began did not cause it (it may be the fix).
REBOOT_AFTER_SECONDS = 600


def machine_rebooted_meanwhile(prom: list[EvidenceItem], starts_at: float) -> Finding | None:
    """A machine booted shortly before the service went down (``fleet_reboots``): the reboot
    took it down, even where the service's name does not say which machine it runs on."""
    booted = [
        (item, s, s.peak)
        for item in of_kind(prom, "fleet_reboots")
        for s in item.series
        if s.peak is not None and s.peak <= starts_at + REBOOT_AFTER_SECONDS
    ]
    if not booted:
        return None
    item, s, at = min(booted, key=lambda found: abs(starts_at - found[2]))
    machine = s.labels.get("instance", "a machine")
    when = "before" if at <= starts_at else "after"
    return Finding(
        f"The machine {machine} booted at {_clock(at)} (node_boot_time_seconds), "
        f"{abs(starts_at - at) / 60:.0f} min {when} the target went down at "
        f"{_clock(starts_at)}: its reboot stopped what runs there.",
        0.7,
        (item.id,),
        remedy=LOG_REMEDIES_REBOOT,
        topic="reboot",
    )


# A clock this far off is reported at all (NTP keeps a healthy one within milliseconds).
CLOCK_OFF_SECONDS = 0.5


def _clock_off(
    prom: list[EvidenceItem], kind: str
) -> tuple[EvidenceItem, SeriesStats, float] | None:
    """The offset series of ``kind`` when it is off: its item, its stats and the worst
    offset in the window."""
    found = own_series(prom, kind)
    if not found or found[1].current is None:
        return None
    item, s = found
    worst = max(abs(s.peak or 0.0), abs(s.minimum or 0.0))
    return (item, s, worst) if worst >= CLOCK_OFF_SECONDS else None


def clock_offset(prom: list[EvidenceItem]) -> Finding | None:
    off = _clock_off(prom, "host_clock_offset")
    if off is None:
        return None
    item, s, worst = off
    return Finding(
        f"The host's clock is off by {fmt(s.current)} s (worst {fmt(worst)} s in the window, "
        "node_timex_offset_seconds): time synchronisation is not working. Tokens, TLS, "
        "distributed locks and log ordering break on skewed clocks.",
        0.7,
        (item.id,),
        remedy=LOG_REMEDIES["clock"],
        topic="clock",
    )


# A service's machine this far off is a cause on its own; closer, only when the service's own
# lines fail on time (a token "used before" its issue time).
MACHINE_CLOCK_SKEW_SECONDS = 60.0


def machine_clock(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """The clock of the machine a service runs on is off (its node_exporter's offset)."""
    off = _clock_off(prom, "machine_clock_offset")
    if off is None:
        return None
    item, s, worst = off
    failing = next(
        ((i, t) for i, t in templates(logs) if "clock" in t.tags and not is_background(t)),
        None,
    )
    if failing is None and worst < MACHINE_CLOCK_SKEW_SECONDS:
        return None
    said = f", and the service fails on time: '{_clip(failing[1].example)}'" if failing else ""
    return Finding(
        f"The clock of the machine the service runs on is off by {fmt(s.current)} s (worst "
        f"{fmt(worst)} s in the window, node_timex_offset_seconds of its node_exporter)"
        f"{said}. Tokens, TLS and signed requests fail when clocks disagree: time "
        "synchronisation is not working there.",
        0.75,
        (item.id, *((failing[0].id,) if failing else ())),
        remedy=LOG_REMEDIES["clock"],
        topic="clock",
    )


# Conntrack entries at this share of nf_conntrack_max: the kernel starts dropping new flows
# when the table is full; near it, bursts already overflow between scrapes.
CONNTRACK_FULL_SHARE = 0.9


def conntrack_full(prom: list[EvidenceItem]) -> Finding | None:
    """The connection-tracking table at its limit: new connections are dropped."""
    found = own_series(prom, "host_conntrack")
    if not found or found[1].peak is None or found[1].peak < CONNTRACK_FULL_SHARE:
        return None
    item, s = found
    was = _share_earlier(s)
    return Finding(
        f"The connection-tracking table is full: conntrack entries reached {s.peak:.0%} of "
        f"nf_conntrack_max{was}. The kernel drops packets of new connections when it is full, "
        "so connections time out while the services themselves are up.",
        0.75,
        (item.id,),
        remedy=LOG_REMEDIES["conntrack"],
        topic="conntrack",
    )


# The member the kernel or mdadm says failed: "md/raid:md0: Disk failure on sdd1, disabling
# device", mdadm's "Fail event detected on md device /dev/md0, component device /dev/sdd1".
_FAILED_MEMBER = re.compile(
    r"Disk failure on (\w+)|Fail(?:Spare)? event detected on md device \S+, component device "
    r"(?:/dev/)?(\w+)",
    re.I,
)


def _failed_member(
    logs: list[EvidenceItem], array: str
) -> tuple[EvidenceItem, str, LogTemplate] | None:
    """The evidence, the name and the line of the member ``array`` lost, as its logs say."""
    for item, template in templates(logs):
        found = _FAILED_MEMBER.search(template.example)
        if found and (array in template.example or array == "an array"):
            return item, found.group(1) or found.group(2), template
    return None


def raid_degraded(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """An md array on the machine that lost a member in the window (``raid_failed_members``),
    how far its rebuild got (``raid_synced``) and, from the logs, which member failed."""
    failed = [
        (item, s)
        for item in of_kind(prom, "raid_failed_members")
        for s in item.series
        if (s.current or 0.0) > 0
    ]
    if not failed:
        return None
    item, s = failed[0]
    array = s.labels.get("device", "an array")
    ids = [item.id]
    rebuilding = ""
    synced = _labelled(prom, "raid_synced", "device", array)
    if synced:
        rebuilding = (
            f"; it is rebuilding onto a spare ({synced[1].current:.0%} synced), and the rebuild "
            "competes with every read and write"
        )
        ids.append(synced[0].id)
    since = _first_above(s, 1.0) if (s.minimum or 0.0) < 1.0 else None
    when = f" since {_clock(since)}" if since else ""
    member = _failed_member(logs, array)
    which = ""
    if member:
        which = f", {member[1]} ('{_clip(member[2].example)}' at {_clock(member[2].first_seen)})"
        ids.append(member[0].id)
    return Finding(
        f"The RAID array {array} runs degraded: {fmt(s.current)} member(s) failed"
        f"{which}{when} (node_md_disks state=failed){rebuilding}. A failed disk, not the load, "
        "slows the array, and it has no redundancy left until it has resynced.",
        0.75,
        tuple(ids),
        remedy=LOG_REMEDIES["disk_failure"],
        topic="disk_failure",
    )


# What md is doing to an array, as the kernel logs it: "md: recovery of RAID array md0" (onto a
# replaced or spare member), "resync" (after an unclean stop), "data-check" (checkarray).
_MD_SYNC = re.compile(
    r"md: (recovery|resync|data-check|requested-resync|reshape) of RAID array (\w+)", re.I
)
# An operator adding a member: mdadm's `--add /dev/sdc1` (or `-a`), mdadm's RebuildStarted.
_MD_ADDED = re.compile(r"mdadm\b.*\s(?:--add|--re-add|-a)\s+(?:/dev/)?(\w+)")


def _rebuild_started(s: SeriesStats) -> float | None:
    """When the resync began: the share-synced series (kept only below 1) starts then, unless
    it was already running when the window opened."""
    if not s.points or s.points[0][1] > 0.02:
        return None
    return s.points[0][0]


def raid_rebuilding(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """An md array with no failed member that resyncs (``raid_synced`` below 1): a rebuild
    onto a replaced disk, a resync or a scheduled check reads whole disks flat out, and every
    other read and write on them queues behind it. Maintenance that ends, not a failing disk."""
    failing = {
        s.labels.get("device")
        for item in of_kind(prom, "raid_failed_members")
        for s in item.series
        if (s.current or 0.0) > 0
    }
    syncing = [
        (item, s)
        for item in of_kind(prom, "raid_synced")
        for s in item.series
        if s.current is not None and s.current < 1 and s.labels.get("device") not in failing
    ]
    if not syncing:
        return None
    item, s = syncing[0]
    synced = s.current or 0.0
    array = s.labels.get("device", "an array")
    ids = [item.id]
    action, added = "", ""
    for log_item, template in templates(logs):
        sync = _MD_SYNC.search(template.example)
        if sync and sync.group(2) == array and not action:
            action = sync.group(1).lower()
            ids.append(log_item.id)
        member = _MD_ADDED.search(template.example)
        if member and array in template.example and not added:
            added = f"{member.group(1)} added at {_clock(template.first_seen)}"
            ids.append(log_item.id)
    what = {
        "data-check": "a consistency check (`checkarray`, scheduled monthly by Debian's mdadm)",
        "resync": "a resync of its members (after an unclean stop)",
        "requested-resync": "a requested resync of its members",
        "reshape": "a reshape (a member or a level added)",
    }.get(action, "a rebuild onto a replaced member")
    started = _rebuild_started(s)
    since = f" since {_clock(started)}" if started else ""
    left = ""
    if started and s.points[-1][0] > started and synced > 0:
        pace = synced / (s.points[-1][0] - started)  # share per second
        left = f", about {(1 - synced) / pace / 3600:.1f} h left at this pace"
    return Finding(
        f"The RAID array {array} is busy with {what}{f' ({added})' if added else ''}{since}: "
        f"{synced:.0%} synced{left}. md reads the surviving disk flat out and writes the "
        "other, so every other read and write on the array queues behind it. No member is "
        "failed now: this is maintenance that ends when the sync completes, not a failing "
        "disk, and the slow requests on this machine are its symptom.",
        0.8,
        tuple(dict.fromkeys(ids)),
        remedy="Watch the sync (`cat /proc/mdstat` shows its progress and the time left) and "
        "let it finish; to give the applications room meanwhile, lower its speed "
        f"(`echo 50000 > /sys/block/{array}/md/sync_speed_max`, or "
        "`sysctl -w dev.raid.speed_limit_max=50000`, in KB/s) and raise it again once the "
        "load drops. Run checks and planned rebuilds outside busy hours.",
        replaces_steps=True,
        topic="raid_rebuild",
    )


def disk_errors_since(logs: list[EvidenceItem], since: float) -> bool:
    """Whether any disk-failure line (medium errors, md dropping a member) came at ``since``
    or later: a rebuild's surviving disk failing too."""
    return any(
        "disk_failure" in template.tags and template.last_seen >= since
        for _, template in templates(logs)
    )


def rebuild_started(prom: list[EvidenceItem]) -> float | None:
    """When a resync seen in ``raid_synced`` began, if it began in the window."""
    for item in of_kind(prom, "raid_synced"):
        for s in item.series:
            if s.current is not None and s.current < 1 and (started := _rebuild_started(s)):
                return started
    return None


# WAL an inactive slot holds back that matters next to a filling disk.
SLOT_WAL_BYTES = 1024**3


def inactive_replication_slot(prom: list[EvidenceItem]) -> Finding | None:
    """An inactive replication slot holding back WAL on the machine whose disk fills."""
    held = _reaching(prom, "inactive_replication_slots", SLOT_WAL_BYTES)
    if not held:
        return None
    item, s = max(held, key=lambda found: found[1].current or 0.0)
    slot = s.labels.get("slot_name", "?")
    growth = ""
    if s.points and len(s.points) > 1 and s.points[-1][0] > s.points[0][0]:
        hours = (s.points[-1][0] - s.points[0][0]) / 3600
        rate = (s.points[-1][1] - s.points[0][1]) / hours / 1024**3
        growth = f", growing {rate:.1f} GiB/h" if rate > 0 else ""
    return Finding(
        f"The replication slot {slot} is inactive and holds back "
        f"{(s.current or 0.0) / 1024**3:.1f} GiB of WAL{growth}: PostgreSQL keeps every WAL "
        "segment the slot has not consumed, so pg_wal grows until the disk is full.",
        0.75,
        (item.id,),
        remedy=f"Bring the slot's standby back, or drop the slot if it is abandoned "
        f"(`SELECT pg_drop_replication_slot('{slot}')`); cap what a slot may hold with "
        "`max_slot_wal_keep_size`.",
        topic="replication_slot",
    )


# Threads in one lock-waiting state that make a pile-up rather than a passing wait.
LOCK_WAITING_THREADS = 5


def mysql_lock_waits(prom: list[EvidenceItem]) -> Finding | None:
    """MySQL threads piled up in a lock-waiting processlist state (``mysql_lock_waits``)."""
    waiting = _reaching(prom, "mysql_lock_waits", LOCK_WAITING_THREADS, peak=True)
    if not waiting:
        return None
    item, s = max(waiting, key=lambda found: found[1].peak or 0.0)
    state = s.labels.get("state", "waiting for a lock")
    metadata = "metadata lock" in state.lower()
    why = (
        " A metadata lock queues every query on the table behind a schema change, which "
        "itself waits for a transaction still open on that table: find it in "
        "`performance_schema.metadata_locks` / `sys.schema_table_lock_waits` and end it."
        if metadata
        else " Find the transaction holding the lock (`sys.innodb_lock_waits`)."
    )
    return Finding(
        f"Up to {fmt(s.peak)} MySQL threads are in the state '{state}' (processlist, now "
        f"{fmt(s.current or 0.0)}).{why}",
        0.75,
        (item.id,),
        topic="lock_waits",  # beside the lock lines the logs quote, not instead of them
    )


# Redeliveries at this share of what is published, and at this multiple of their usual rate,
# are consumers rejecting the messages rather than slowly processing them.
REDELIVERED_SHARE = 0.25
REDELIVERED_RISE = 2.0


def _redelivered(prom: list[EvidenceItem], sent: float) -> tuple[EvidenceItem, SeriesStats] | None:
    """The queue's redeliveries (``queue_redelivery_rate``) when they rose to a good share of
    what arrives: its consumers reject or drop what they are given."""
    found = own_series(prom, "queue_redelivery_rate")
    if not found or found[1].current is None:
        return None
    now, usual = found[1].current, max(found[1].baseline or 0.0, 0.0)
    if now < REDELIVERED_SHARE * sent or now < REDELIVERED_RISE * usual:
        return None
    return found


def _fell_below(s: SeriesStats, level: float) -> float | None:
    """When the series went under ``level`` for good (after its last point above it)."""
    above = [t for t, v in s.points if v > level]
    if not above:
        return None
    return next((t for t, _ in s.points if t > above[-1]), None)


# Commits below this share of their usual rate have stopped.
COMMITS_STOPPED_SHARE = 0.05


def commits_stopped(prom: list[EvidenceItem]) -> Finding | None:
    """A consumer group that keeps its members but stopped committing while records keep
    arriving (``queue_commit_rate``): its consumers are stuck, not gone. What they wait for
    is in their own logs or thread dumps, so this says what stopped, not why."""
    commits = own_series(prom, "queue_commit_rate") or next(
        ((i, s) for i in of_kind(prom, "queue_commit_rate") for s in i.series), None
    )
    produced = next(((i, s) for i in of_kind(prom, "queue_produce_rate") for s in i.series), None)
    if not commits or not produced:
        return None
    item, s = commits
    arriving = produced[1].current or 0.0
    floor = COMMITS_STOPPED_SHARE * arriving
    now = s.current
    if arriving <= 0 or now is None or now > floor:
        return None
    since = _fell_below(s, floor)
    members = own_series(prom, "queue_consumers")
    present = (
        f" although it still has {fmt(members[1].current)} member(s)"
        if members and (members[1].current or 0) > 0
        else ""
    )
    return Finding(
        "The group's committed offsets stopped advancing ("
        + (f"from about {_clock(since)}" if since else "all through the window")
        + f": {fmt(max(now, 0.0))} records/s committed against {fmt(arriving)} arriving)"
        f"{present}: the lag grows because the consumers "
        "are stuck, not gone. Their logs or a thread dump show what they wait for (a "
        "downstream call, a lock, a stuck poll loop).",
        0.5,
        tuple(dict.fromkeys([item.id, produced[0].id, *([members[0].id] if members else [])])),
        explains=False,
    )


# Consumers taking under this share of their usual rate have slowed down; publishers between
# these shares of theirs kept their pace, and above the surge share they send more.
CONSUMERS_SLOWED_SHARE = 0.6
PUBLISHERS_STEADY = (0.7, 1.4)
PUBLISHERS_SURGE = 1.5


def _usual_and_now(s: SeriesStats) -> tuple[float, float] | None:
    """A rate's level before the window's change (its baseline) and its last value."""
    if s.baseline is None or s.current is None or s.baseline <= 0:
        return None
    return s.baseline, max(s.current, 0.0)


def queue_rates_moved(prom: list[EvidenceItem]) -> Finding | None:
    """Which side of a backlogged queue moved (RabbitMQ's ``queue_publish_rate`` and
    ``queue_ack_rate``, or a Kafka group's ``queue_produce_rate`` and ``queue_commit_rate``):
    consumers that still attach but take far fewer messages while publishers keep their pace
    are slow, and what each message now waits on is the cause; publishers that send far more
    than before while consumers keep theirs outrun them."""
    arriving = own_series(prom, "queue_publish_rate")
    taken = own_series(prom, "queue_ack_rate")
    if not arriving or not taken:
        return _kafka_rates_moved(prom)
    sent, acked = _usual_and_now(arriving[1]), _usual_and_now(taken[1])
    if not sent or not acked:
        return None
    consumers = own_series(prom, "queue_consumers")
    if consumers and (consumers[1].current or 0.0) <= 0:
        return None  # gone, not slow: queue_without_consumers says so
    unacked = own_series(prom, "queue_unacked")
    ids = [arriving[0].id, taken[0].id, *([consumers[0].id] if consumers else [])]
    (sent_before, sent_now), (acked_before, acked_now) = sent, acked
    kept = PUBLISHERS_STEADY[0] * sent_before <= sent_now <= PUBLISHERS_STEADY[1] * sent_before
    if kept and acked_now <= CONSUMERS_SLOWED_SHARE * acked_before:
        since = _fell_below(taken[1], CONSUMERS_SLOWED_SHARE * acked_before)
        failing = _redelivered(prom, sent_now)
        if failing:
            item, redelivered = failing
            return Finding(
                "The consumers fail the messages they take: "
                f"{fmt(redelivered.current)} messages/s come back for redelivery (usually "
                f"{fmt(redelivered.baseline)}) while only {fmt(acked_now)}/s are acknowledged "
                f"(usually {fmt(acked_before)})"
                + (f" since about {_clock(since)}" if since else "")
                + f", and publishers keep sending {fmt(sent_now)}/s. Messages are rejected or "
                "requeued instead of processed (a message that fails every time, or a "
                "dependency every message needs failing), so the backlog grows.",
                0.65,
                tuple([*ids, item.id]),
                remedy="Find why the consumers reject the messages (their error lines, the "
                "redelivered message's content); give the queue a dead-letter exchange and a "
                "delivery limit so a message that always fails stops blocking the rest.",
                topic="consumers_failing",
            )
        attached = (
            f"; the queue's {fmt(consumers[1].current)} consumer(s) are still attached"
            if consumers
            else ""
        )
        held = ""
        if (
            unacked
            and unacked[1].current
            and unacked[1].baseline is not None
            and unacked[1].current >= 2 * max(unacked[1].baseline, 1.0)
        ):
            held = (
                f", and {fmt(unacked[1].current)} messages sit delivered but unacknowledged "
                f"(usually {fmt(unacked[1].baseline)}): each consumer holds its prefetch "
                "while it works"
            )
            ids.append(unacked[0].id)
        return Finding(
            "The consumers slowed down: they acknowledge "
            f"{fmt(acked_now)} messages/s against their usual {fmt(acked_before)}"
            + (f" since about {_clock(since)}" if since else "")
            + f", while publishers keep sending {fmt(sent_now)}/s (usually "
            f"{fmt(sent_before)}){attached}{held}. Each message takes longer to process, "
            "so the backlog grows by the difference: what the consumers now wait on (a slow "
            "downstream call, a database, a lock) is the cause.",
            0.65,
            tuple(ids),
            remedy="Find what each message now waits on in the consumers (their slow calls "
            "in logs or traces, the latency of what they call) and fix that; more consumers "
            "help only if that dependency has headroom.",
            topic="consumers_slow",
        )
    if (
        sent_now >= PUBLISHERS_SURGE * sent_before
        and sent_now > acked_now
        and (acked_now >= CONSUMERS_SLOWED_SHARE * acked_before)
    ):
        since = _first_above(arriving[1], PUBLISHERS_SURGE * sent_before)
        return Finding(
            f"The publishers send {fmt(sent_now)} messages/s against their usual "
            f"{fmt(sent_before)} since about {_clock(since)}, while the consumers keep their "
            f"pace ({fmt(acked_now)}/s acknowledged, usually {fmt(acked_before)}): the backlog "
            "is more work arriving than the consumers can take, not consumers failing.",
            0.65,
            tuple(ids),
            remedy="Find what publishes more (a batch, a retry storm, a new producer, a "
            "replay) and whether it should; scale the consumers if the load is real.",
            topic="publish_surge",
        )
    return None


def _kafka_rates_moved(prom: list[EvidenceItem]) -> Finding | None:
    """A consumer group committing far fewer records than before while its topic's producers
    keep their pace: its members are slow (stopped commits are ``commits_stopped``'s)."""
    produced = own_series(prom, "queue_produce_rate")
    committed = own_series(prom, "queue_commit_rate")
    if not produced or not committed:
        return None
    written, taken = _usual_and_now(produced[1]), _usual_and_now(committed[1])
    if not written or not taken:
        return None
    (written_before, written_now), (taken_before, taken_now) = written, taken
    kept = PUBLISHERS_STEADY[0] * written_before <= written_now
    kept = kept and written_now <= PUBLISHERS_STEADY[1] * written_before
    stopped = taken_now <= COMMITS_STOPPED_SHARE * written_now
    if not kept or stopped or taken_now > CONSUMERS_SLOWED_SHARE * taken_before:
        return None
    members = own_series(prom, "queue_consumers")
    if members and (members[1].current or 0.0) <= 0:
        return None
    since = _fell_below(committed[1], CONSUMERS_SLOWED_SHARE * taken_before)
    present = f"; its {fmt(members[1].current)} member(s) stay in the group" if members else ""
    return Finding(
        f"The consumers slowed down: the group commits {fmt(taken_now)} records/s against "
        f"its usual {fmt(taken_before)}"
        + (f" since about {_clock(since)}" if since else "")
        + f", while producers keep writing {fmt(written_now)}/s (usually "
        f"{fmt(written_before)}){present}. Each batch takes longer to process, so the lag "
        "grows by the difference: what the consumers now wait on (a slow downstream call, a "
        "database, rebalances) is the cause.",
        0.65,
        tuple(
            dict.fromkeys([committed[0].id, produced[0].id, *([members[0].id] if members else [])])
        ),
        remedy="Find what each batch now waits on in the consumers (their slow calls in logs "
        "or traces, rebalances from a poll interval exceeded) and fix that; more consumers "
        "help only up to the topic's partition count and the dependency's headroom.",
        topic="consumers_slow",
    )


def queue_without_consumers(prom: list[EvidenceItem]) -> Finding | None:
    """The backlogged queue's consumers fell to zero in the window (``queue_consumers``):
    nothing takes its messages, so it grows at the publishers' full rate."""
    found = own_series(prom, "queue_consumers")
    if not found or found[1].current != 0 or not (found[1].peak or 0.0) > 0:
        return None
    item, s = found
    name = s.labels.get("queue") or s.labels.get("consumergroup") or "the queue"
    return Finding(
        f"{name} has no consumers: its consumer count fell from {fmt(s.peak)} to 0 at about "
        f"{_clock(_first_at(s, 0.0))}, so nothing takes messages off it and the backlog grows "
        "at the publishers' rate. Whatever stopped the consumers (scaled to zero, stopped, "
        "crashed, cut off from the broker) is the cause, not the broker.",
        0.75,
        (item.id,),
        remedy="Find what stopped the consumers (the orchestrator's events and its "
        "logs, `docker ps -a`, `kubectl get deploy`), bring them back, and watch the "
        "backlog drain.",
    )


def machine_conntrack_full(prom: list[EvidenceItem]) -> Finding | None:
    """Another machine's conntrack table full (``fleet_conntrack``, for a probe): a load
    balancer or gateway on the path drops new connections, and the probe waits for SYN
    retransmits. Its limit, and whether it was lowered (a sysctl change), say why."""
    full = _reaching(prom, "fleet_conntrack", CONNTRACK_FULL_SHARE, peak=True)
    if not full:
        return None
    item, s = max(full, key=lambda found: found[1].peak or 0.0)
    machine = s.labels.get("instance", "")
    ids = [item.id]
    limit = _labelled(prom, "fleet_conntrack_limit", "instance", machine)
    earlier = _labelled(prom, "fleet_conntrack_lowered", "instance", machine)
    said = f" (limit {limit[1].current:.0f})" if limit else ""
    if limit and earlier and (earlier[1].current or 0.0) > (limit[1].current or 0.0):
        said = (
            f": nf_conntrack_max is {limit[1].current:.0f}, lowered from "
            f"{earlier[1].current:.0f} within the last six hours (a sysctl change)"
        )
        ids += [limit[0].id, earlier[0].id]
    elif limit:
        ids.append(limit[0].id)
    return Finding(
        f"The connection-tracking table of {machine} is full: its entries reached "
        f"{s.peak:.0%} of nf_conntrack_max{said}. A machine on the path (a load balancer, a "
        "gateway) drops new connections' packets when its table is full, so clients wait "
        "for SYN retransmits while the services answer normally.",
        0.75,
        tuple(ids),
        remedy=LOG_REMEDIES["conntrack"],
        topic="conntrack",
    )


def mtu_changed(prom: list[EvidenceItem]) -> Finding | None:
    """An interface's MTU changed on some machine in the window (``fleet_mtu_changes``, for a
    probe): the newest change, with its old and new value."""
    changes = []
    for item in of_kind(prom, "fleet_mtu_changes"):
        for s in item.series:
            values = [v for _, v in s.points]
            if len(set(values)) < 2 or s.current is None:
                continue
            at = next(t for (t, v) in reversed(s.points) if v != s.current)
            before = next(v for (_, v) in reversed(s.points) if v != s.current)
            changes.append((at, item, s, before))
    if not changes:
        return None
    at, item, s, before = max(changes, key=lambda found: found[0])
    device = s.labels.get("device", "an interface")
    machine = s.labels.get("instance", "a machine")
    return Finding(
        f"The MTU of {device} on {machine} changed from {before:.0f} to {s.current:.0f} bytes "
        f"(after {_clock(at)}, node_network_mtu_bytes). Where the MTU no longer matches the "
        "path (a tunnel's MTU above what its underlay carries), packets larger than the path "
        "carries are dropped: pings and small requests pass while larger responses stall.",
        0.75,
        (item.id,),
        remedy=LOG_REMEDIES["mtu"],
        topic="mtu",
    )


def _reaching(
    prom: list[EvidenceItem], kind: str, level: float, *, peak: bool = False
) -> list[tuple[EvidenceItem, SeriesStats]]:
    """The series of ``kind`` whose last value (or ``peak``) is at least ``level``."""
    return [
        (item, s)
        for item in of_kind(prom, kind)
        for s in item.series
        if ((s.peak if peak else s.current) or 0.0) >= level
    ]


def _labelled(
    prom: list[EvidenceItem], kind: str, label: str, value: str
) -> tuple[EvidenceItem, SeriesStats] | None:
    """The series of ``kind`` with ``label`` = ``value`` and a last value, if any."""
    for item in of_kind(prom, kind):
        for s in item.series:
            if s.labels.get(label) == value and s.current is not None:
                return item, s
    return None


def nic_link(prom: list[EvidenceItem]) -> Finding | None:
    """A host NIC that went down or whose carrier flapped in the window."""
    for item in of_kind(prom, "host_nic_up"):
        for s in item.series:
            if s.minimum is not None and s.minimum < 1 and (s.peak or 0) >= 1:
                device = s.labels.get("device", "a NIC")
                state = "is down" if (s.current or 0) < 1 else "went down and came back"
                return Finding(
                    f"Network interface {device} {state} in the window (node_network_up fell "
                    "to 0): the host lost its link, so traffic to it failed.",
                    0.75,
                    (item.id,),
                    remedy=LOG_REMEDIES["link"].replace("DEV", device),
                    topic="link",
                )
    for item in of_kind(prom, "host_nic_carrier_changes"):
        for s in item.series:
            if (s.peak or 0) >= 2:
                device = s.labels.get("device", "a NIC")
                return Finding(
                    f"Network interface {device} flapped: its carrier changed {s.peak:.0f} "
                    "times in 15 minutes (node_network_carrier_changes_total), so connections "
                    "through it break intermittently.",
                    0.7,
                    (item.id,),
                    remedy=LOG_REMEDIES["link"].replace("DEV", device),
                    topic="link",
                )
    return None


# Broken or dropped frames a second on one NIC that are news: well above its earlier rate.
NIC_ERRORS_PER_SECOND = 1.0


def nic_errors(prom: list[EvidenceItem]) -> Finding | None:
    """A NIC whose receive/transmit errors and drops rose: frames corrupted on the wire (a bad
    cable, a duplex or speed mismatch, a failing NIC), so TCP retransmits and requests slow."""
    for item in of_kind(prom, "host_nic_errors"):
        for s in item.series:
            now, before = s.current or 0.0, s.baseline or 0.0
            if now < NIC_ERRORS_PER_SECOND or now < 5 * before:
                continue
            device = s.labels.get("device", "a NIC")
            return Finding(
                f"Network interface {device} receives or sends broken frames: its errors and "
                f"drops rose to {fmt(now)} a second (from {fmt(before)}; "
                "node_network_receive_errs_total, transmit errors, receive drops). Corrupted "
                "frames are retransmitted (packet loss seen as latency): a bad cable or port, "
                "a duplex or speed mismatch after a renegotiation, or a failing NIC.",
                0.75,
                (item.id,),
                remedy=f"Check the link: `ethtool {device}` (speed, duplex, auto-negotiation), "
                f"`ethtool -S {device}` (CRC, alignment errors), `ip -s link show {device}`; "
                "reseat or replace the cable or move to another switch port.",
                topic="link",
            )
    return None


# A firewall's log of a packet this machine sent (`IN=` empty, `OUT=` its interface): its own
# traffic dropped on the way out, not a scan from outside.
_OUTBOUND = re.compile(r"\bIN= OUT=\S+")
_DPT = re.compile(r"\bDPT=(\d+)\b")


def egress_blocked(logs: list[EvidenceItem], port: int, what: str) -> Finding | None:
    """The machine's firewall drops its own packets to ``port`` (``what``: NTP, DNS...): a
    steady stream of such drops since a rule change is as much a cause as a new one, since the
    machine's own traffic, unlike a scanner's, is never noise."""
    for item, t in templates(logs):
        dport = _DPT.search(t.example)
        if "firewall" not in t.tags or not _OUTBOUND.search(t.example) or not dport:
            continue
        if int(dport.group(1)) != port:
            continue
        since = (
            f"{t.count}x in the window, {t.baseline_count}x before it"
            if t.baseline_count
            else f"{t.count}x from {_clock(t.first_seen)}"
        )
        return Finding(
            f"The machine's own firewall drops its outgoing {what} traffic (port {port}): "
            f"'{_clip(t.example)}' ({since}). Nothing it sends to port {port} gets out, so "
            f"{what} cannot work from this machine.",
            0.75,
            (item.id,),
            remedy=f"Find the rule (`ufw status numbered`, `iptables -S OUTPUT`, `nft list "
            f"ruleset`) and allow outgoing port {port} to the servers this machine uses; check "
            "what changed the firewall (configuration management, an operator).",
            topic="firewall",
        )
    return None


# Directories on tmpfs: empty after every boot.
_TMPFS = ("/run/", "/var/run/", "/tmp/", "/dev/shm/")  # noqa: S108 (names, not files)


def tmpfs_path_gone(logs: list[EvidenceItem]) -> Finding | None:
    """A service failing on a missing path under /run (or /tmp, /dev/shm): those are tmpfs,
    emptied at every boot, so a directory made there by hand is gone after a reboot; systemd
    creates it at each start when the unit says so."""
    for item, t in templates(logs):
        path = missing_path(t.example)
        if not path or not path.startswith(_TMPFS) or (t.novelty == "steady" and t.baseline_count):
            continue
        # /run/NAME, /tmp/NAME; /var/run/NAME, /dev/shm/NAME.
        top = "/".join(path.split("/")[: 4 if path.startswith(("/var/", "/dev/")) else 3])
        name = top.rsplit("/", 1)[-1]
        return Finding(
            f"The service fails on a missing path under a tmpfs: '{_clip(t.example)}' "
            f"({t.count}x from {_clock(t.first_seen)}). {top} lives in memory and is empty "
            "after every boot (and a unit's RuntimeDirectory= is removed when it stops): a "
            "directory created there by hand, or by a start-up step that no longer runs, is "
            "gone, so the service cannot create or open what it keeps there.",
            0.75,
            (item.id,),
            remedy=f"Let systemd create it at every start: `RuntimeDirectory={name}` in the "
            f"unit's [Service] section (or a tmpfiles.d entry `d {top} 0755 USER GROUP -`), "
            "then `systemctl daemon-reload` and restart the service.",
            topic="runtime_dir",
        )
    return None


# Ethernet line rates in bytes per second (100 Mbit/s to 100 Gbit/s): traffic that levels
# off just under one of them is that link's ceiling when node_exporter reports no speed.
_LINE_RATES = (12.5e6, 125e6, 312.5e6, 1.25e9, 3.125e9, 5e9, 12.5e9)
# At this share of its line rate a link queues and drops.
LINK_SATURATED = 0.85
# TCP retransmitting this share of its segments, and five times its usual share: packets are
# being lost.
RETRANSMIT_SHARE = 0.01


def _line_rate(s: SeriesStats) -> tuple[float, bool] | None:
    """(the link's rate in bytes/s, whether node_exporter reported it) of a NIC's series."""
    if s.limit:
        return s.limit, True
    peak = s.peak or 0.0
    rate = next((r for r in _LINE_RATES if peak <= r * 1.02), None)
    return (rate, False) if rate else None


def _bits(rate: float) -> str:
    return f"{rate * 8 / 1e9:g} Gbit/s" if rate >= 125e6 else f"{rate * 8 / 1e6:g} Mbit/s"


def link_saturated(prom: list[EvidenceItem]) -> Finding | None:
    """The machine's link full (its traffic levelled off at the line rate) or TCP losing
    packets: every connection on the machine then waits for retransmissions, so a service
    there is slow or times out while nothing is wrong with it. Names the container sending
    the most when cAdvisor runs there."""
    full: tuple[EvidenceItem, SeriesStats, str, float, bool] | None = None
    for kind, verb in (("host_nic_transmit", "sends"), ("host_nic_receive", "receives")):
        for item in of_kind(prom, kind):
            for s in item.series:
                now, before = s.current or 0.0, s.baseline or 0.0
                line = _line_rate(s)
                if line is None or now < LINK_SATURATED * line[0] or now < 3 * before:
                    continue
                if full is None or now / line[0] > (full[1].current or 0.0) / full[3]:
                    full = (item, s, verb, line[0], line[1])
    retransmits = own_series(prom, "host_tcp_retransmit_share")
    lossy = None
    if retransmits:
        share, usual = retransmits[1].current or 0.0, retransmits[1].baseline or 0.0
        if share >= RETRANSMIT_SHARE and share >= 5 * usual:
            lossy = (retransmits[0], share, usual)
    if full is None and lossy is None:
        return None
    cited: list[str] = []
    parts: list[str] = []
    since = ""
    if full:
        item, s, verb, rate, reported = full
        device = s.labels.get("device", "a NIC")
        shift = s.change_point
        since = f" since about {_clock(shift.at)}" if shift and shift.after > shift.before else ""
        speed = _bits(rate) + ("" if reported else ", the nearest line rate above its peak")
        parts.append(
            f"{device} {verb} {_bytes(s.current or 0.0)}/s{since} (from "
            f"{_bytes(s.baseline or 0.0)}/s), {(s.current or 0.0) / rate:.0%} of a {speed} link"
        )
        cited.append(item.id)
    if lossy:
        parts.append(f"TCP retransmits {lossy[1]:.1%} of its segments (usually {lossy[2]:.2%})")
        cited.append(lossy[0].id)
    sender = _top_sender(prom)
    if sender and full:
        cited.append(sender[0])
    head = "The machine's link is saturated" if full else "The machine is losing packets"
    nic = full[1].labels.get("device", "DEVICE") if full else "DEVICE"
    text = (
        f"{head}: "
        + " and ".join(parts)
        + ". Packets queue and are dropped, and every connection on the machine waits for "
        "retransmissions, so the services there answer slowly or time out while nothing is "
        "wrong with them."
        + (f" The top sender is container {sender[1]}." if sender and full else "")
    )
    return Finding(
        text,
        0.75 if full else 0.65,
        tuple(cited),
        "network",
        remedy=f"Find what fills the link (`iftop -i {nic}`, `nethogs`, `ss -tin` for "
        "retransmits) and cap it (rclone/rsync `--bwlimit`, `tc` shaping, QoS) or move it to "
        "another link or off-peak hours.",
        topic="bandwidth",
    )


def _top_sender(prom: list[EvidenceItem]) -> tuple[str, str] | None:
    """(evidence id, name) of the container sending the most on the machine, with its rate."""
    for item in of_kind(prom, "containers_network_transmit"):
        sending = [s for s in item.series if s.labels.get("name") and s.current]
        if sending:
            top = max(sending, key=lambda s: s.current or 0.0)
            return item.id, f"{top.labels['name']} ({_bytes(top.current or 0.0)}/s)"
    return None


# A certificate with less than this left is worth naming next to a failing probe.
CERT_SOON_SECONDS = 14 * 86400


def probe_phase(prom: list[EvidenceItem]) -> Finding | None:
    """Where a blackbox probe fails: the name no longer resolves, or the target answers 5xx."""
    found = own_series(prom, "probe_ip_protocol")
    if found and found[1].current == 0 and (found[1].peak or 0) > 0:
        return Finding(
            "The probe can no longer resolve the target's name: probe_ip_protocol fell to 0 "
            f"at about {_clock(_first_at(found[1], 0))} (it was IPv{fmt(found[1].peak)}), so the "
            "probe fails at the DNS lookup before any connection.",
            0.7,
            (found[0].id,),
            remedy=LOG_REMEDIES["dns"],
            topic="dns",
        )
    if upstreams := resolver_upstreams(prom):
        return upstreams
    if slow := _slow_probe_phase(prom):
        return slow
    status = own_series(prom, "probe_http_status")
    if status and status[1].current is not None and status[1].current >= 500:
        return Finding(
            f"The target answers the probe with HTTP {fmt(status[1].current)} "
            "(probe_http_status_code): it is reachable, the application behind it fails.",
            0.6,
            (status[0].id,),
        )
    return None


# Upstream health-check failures per second (CoreDNS checks each upstream every 0.5 s).
UPSTREAM_FAILING_PER_SECOND = 0.2


def resolver_upstreams(prom: list[EvidenceItem]) -> Finding | None:
    """A resolver whose upstreams stopped answering (``dns_upstream_failures``), with its
    SERVFAIL rate: names it forwards fail, those it serves itself still resolve."""
    failing = _reaching(prom, "dns_upstream_failures", UPSTREAM_FAILING_PER_SECOND)
    if not failing:
        return None
    item = failing[0][0]
    resolver = failing[0][1].labels.get("instance", "the resolver")
    upstreams = sorted({s.labels.get("to", "?") for _, s in failing})
    began = min(_first_above(s, UPSTREAM_FAILING_PER_SECOND) for _, s in failing)
    ids = [item.id]
    servfail = ""
    answered = _labelled(prom, "dns_servfail", "instance", resolver)
    if answered and (answered[1].current or 0.0) > 2 * max(answered[1].baseline or 0.0, 0.01):
        rate, before = fmt(answered[1].current), fmt(answered[1].baseline or 0.0)
        servfail = f"; it answers SERVFAIL {rate}/s (it was {before}/s)"
        ids.append(answered[0].id)
    return Finding(
        f"The resolver {resolver} cannot reach the upstream servers it forwards to: "
        f"{', '.join(upstreams)} fail its health checks since about {_clock(began)} "
        f"(coredns_forward_healthcheck_failures_total){servfail}. Names it forwards time out "
        "or fail (SERVFAIL), while the zones it serves itself still resolve.",
        0.75,
        tuple(ids),
        remedy="Query each upstream from the resolver's host (`dig @UPSTREAM NAME`), check "
        "the path and firewall to it (UDP/TCP 53), and the upstream servers themselves; "
        "`forward` with a working fallback keeps names resolving meanwhile.",
        topic="dns",
    )


# A phase this long, and this many times what it took before, is where a slow probe waits.
SLOW_PHASE_SECONDS = 1.0
SLOW_PHASE_FACTOR = 5.0
_PHASES = {
    "resolve": (
        "resolving the target's name",
        "the resolver is slow or a nameserver in resolv.conf does not answer, so each lookup "
        "waits for its timeout before the next server answers",
        "dns",
    ),
    "connect": (
        "connecting",
        "packets are lost or SYNs dropped on the way (a firewall, a full conntrack table or "
        "accept queue), so the connection waits for retransmissions",
        "path",
    ),
    "tls": (
        "the TLS handshake",
        "the handshake waits (an OCSP or CRL check, a slow key exchange, large packets lost "
        "on a path with a smaller MTU)",
        "tls",
    ),
}


def _slow_probe_phase(prom: list[EvidenceItem]) -> Finding | None:
    """The phase of a blackbox probe that went from quick to seconds (probe_http_duration
    by phase), with the targets that went down at about the same time."""
    item = next(iter(of_kind(prom, "probe_phases")), None)
    if item is None:
        return None
    slow = [
        s
        for s in item.series
        if s.labels.get("phase") in _PHASES
        and (s.peak or 0.0) >= SLOW_PHASE_SECONDS
        and (s.peak or 0.0) >= SLOW_PHASE_FACTOR * max(s.baseline or 0.0, 0.001)
    ]
    if not slow:
        return None
    s = max(slow, key=lambda x: x.peak or 0.0)
    doing, why, topic = _PHASES[s.labels["phase"]]
    before = (s.baseline or 0.0) * 1000
    down = _went_down(prom, item.window_start)
    also = f" Down since about then: {', '.join(down)}." if down else ""
    return Finding(
        f"The probe spends {fmt(s.peak)} s {doing} (it took {before:.0f} ms before): {why}." + also,
        0.75,
        (item.id, *([i.id for i in of_kind(prom, "targets_down")] if down else [])),
        remedy=LOG_REMEDIES.get(topic, ""),
        topic=topic,
    )


def _went_down(prom: list[EvidenceItem], window_start: float | None) -> list[str]:
    """Targets that stopped answering inside the window (`up == 0` only once they are down:
    a series whose first point is well after the window began went down then)."""
    names = []
    for item in of_kind(prom, "targets_down"):
        for s in item.series:
            began = s.points[0][0] if s.points else None
            if began is not None and window_start is not None and began > window_start + 120:
                names.append(s.labels.get("instance") or s.labels.get("job") or "?")
    return names[:3]


def _renewed_on_disk(prom: list[EvidenceItem], served_left: float) -> tuple[float, str] | None:
    """(seconds left, file and machine) of a certificate file for the same name that is valid
    well beyond the one served: renewed, not loaded."""
    best: tuple[float, str] | None = None
    for item in of_kind(prom, "cert_files"):
        for s in item.series:
            left = s.current
            if left is None or left < served_left + 7 * 86400 or left < 2 * served_left:
                continue
            where = s.labels.get("filepath", "a certificate file")
            if machine := s.labels.get("instance", ""):
                where += f" on {machine.rsplit(':', 1)[0]}"
            if best is None or left > best[0]:
                best = (left, where)
    return best


def probe_certificate(prom: list[EvidenceItem]) -> Finding | None:
    """The certificate the probe saw has expired or expires soon."""
    found = own_series(prom, "probe_cert_expiry")
    if not found or found[1].current is None or found[1].current > CERT_SOON_SECONDS:
        return None
    item, s = found
    left = s.current or 0.0
    span = f"{abs(left) / 86400:.1f} days" if abs(left) >= 86400 else f"{abs(left) / 3600:.1f} h"
    renewed = _renewed_on_disk(prom, left)
    if left <= 0:
        text = (
            f"The certificate the probe saw expired {span} ago "
            "(probe_ssl_earliest_cert_expiry): clients refuse the TLS handshake."
        )
    elif renewed:
        file_left, where = renewed
        text = (
            f"The certificate the probe saw expires in {span} "
            f"(probe_ssl_earliest_cert_expiry), but the one on disk was renewed: {where} is "
            f"valid for {file_left / 86400:.1f} more days (x509_cert_not_after). The server "
            "still serves the old certificate from memory: it was not reloaded after the "
            "renewal (no deploy hook)."
        )
    else:
        text = (
            f"The certificate the probe saw expires in {span} "
            "(probe_ssl_earliest_cert_expiry): its renewal has not happened."
        )
    return Finding(
        text,
        0.75 if left <= 0 or renewed else 0.6,
        (item.id, *(i.id for i in of_kind(prom, "cert_files") if renewed)),
        remedy=_RELOAD_REMEDY if renewed else LOG_REMEDIES["tls"],
        topic="certificate",
    )


_RELOAD_REMEDY = (
    "Reload the server that terminates TLS so it reads the renewed file (`nginx -s reload`, "
    "`systemctl reload haproxy`, a container restart), then make the renewal do it: certbot's "
    "`--deploy-hook`, or a reloader watching the certificate."
)


# A tenth of wall time paused in the collector stalls requests visibly; it must also have
# risen against the window's start (a runtime that always spends that much is not the change).
GC_PAUSE_SHARE = 0.1
HEAP_FULL_SHARE = 0.85
GC_REMEDY = (
    "Compare the heap left after each collection with the maximum heap: if it stays high, "
    "raise the heap (-Xmx, GOMEMLIMIT, --max-old-space-size) or find what fills it with a heap "
    "dump or profile; restarting only resets the clock."
)


def gc_pauses(prom: list[EvidenceItem]) -> Finding | None:
    """The runtime spends a large and grown share of its time paused in garbage collection."""
    found = own_series(prom, "runtime_gc_share")
    if not found:
        return None
    item, s = found
    peak, now, before = s.peak or 0.0, s.current or 0.0, s.baseline or 0.0
    if peak < GC_PAUSE_SHARE or now < GC_PAUSE_SHARE / 2 or peak < 2 * before + 0.02:
        return None
    cited = [item.id]
    heap = ""
    full = own_series(prom, "runtime_heap_ratio")
    if full and (full[1].peak or 0.0) >= HEAP_FULL_SHARE:
        cited.append(full[0].id)
        heap = (
            f", with the heap at {full[1].peak:.0%} of its maximum: it is too small for what it "
            "holds, or something leaks"
        )
    return Finding(
        f"The process spends {peak:.0%} of its time paused in garbage collection, against "
        f"{before:.0%} earlier in the window ({label_text(s.labels)}){heap}. Requests stall "
        "during the pauses.",
        0.7,
        tuple(cited),
        remedy=GC_REMEDY,
        topic="gc",
    )


# Goroutines a leak is told from: thousands, climbing steadily by a tenth of them or more
# within the window. A busy service's count moves with its load, up and down.
LEAKING_GOROUTINES = 1000


def goroutine_leak(prom: list[EvidenceItem]) -> Finding | None:
    """A Go process whose goroutines only climb: they are started and never end."""
    found = own_series(prom, "runtime_goroutines")
    if not found:
        return None
    item, s = found
    now, low, peak = s.current or 0.0, s.minimum or 0.0, s.peak or 0.0
    climbing = s.trend == "rising" and now >= 0.95 * peak  # a leak is at its highest now
    if not climbing or now < LEAKING_GOROUTINES or now - low < 0.1 * now:
        return None
    return Finding(
        f"The process's goroutines climb steadily, from {fmt(low)} to {fmt(now)} in the window "
        f"({label_text(s.labels)}): a goroutine leak. Each one that never ends keeps its stack "
        "and what it waits on (a connection, a channel, a lock), so memory, GC work and "
        "latency grow with them until the process is restarted.",
        0.75,
        (item.id,),
        remedy="Take a goroutine profile (`curl http://HOST:PORT/debug/pprof/goroutine?debug=1`, "
        "or `go tool pprof`) and look for the stack that holds thousands of them: usually a "
        "call without a timeout or a channel nobody reads; compare with the last release. A "
        "restart only buys time.",
        topic="goroutines",
    )


def _first_at(s: SeriesStats, value: float) -> float:
    """When the series first took ``value`` after having another one."""
    seen_other = False
    for ts, v in s.points:
        if v != value:
            seen_other = True
        elif seen_other:
            return ts
    return s.last_seen or 0.0


def _first_above(s: SeriesStats, level: float) -> float:
    """When the series first reached ``level`` (its first point if it always had)."""
    return next((ts for ts, v in s.points if v >= level), s.last_seen or 0.0)


# Share of point pairs that must move the same way (Kendall's tau) for a steady climb, and the
# least total move (of the level) that counts: a wiggle around a flat level is no growth.
STEADY_TAU = 0.6
MIN_CLIMB_SHARE = 0.02


def _climbs_steadily(s: SeriesStats, rising: bool) -> bool:
    """A steady move the first-to-last-third trend can miss near a ceiling (86% -> 94%)."""
    if s.trend == ("rising" if rising else "falling"):
        return True
    if s.peak is None or s.minimum is None or s.trend == "oscillating":
        return False
    big_enough = s.peak - s.minimum >= MIN_CLIMB_SHARE * max(abs(s.peak), 1e-9)
    return big_enough and _steady(s.points, rising)


def _steady(points: list[tuple[float, float]], rising: bool) -> bool:
    """Nearly every pair of points moves the same way (Kendall's tau past ``STEADY_TAU``)."""
    tau = kendall_tau(points)
    return tau >= STEADY_TAU if rising else tau <= -STEADY_TAU


# A climb that ended this close to a resolution (seconds before it, or just after) is what
# ended the alert.
RESET_BEFORE_SECONDS = 600.0
RESET_AFTER_SECONDS = 120.0


def reset_at_recovery(prom: list[EvidenceItem], end_ts: float) -> tuple[str, float] | None:
    """(evidence id, when) of a memory climb that ended in one sharp fall (a restart, a
    kill) just as a resolved alert ended: the alert cleared because the memory was released,
    not because what grew stopped growing; it will climb again."""
    for kind, rising in (("container_memory_ratio", True), ("host_memory_available", False)):
        found = own_series(prom, kind)
        if not found:
            continue
        item, s = found
        peak, low = s.peak, s.minimum
        if peak is None or low is None:
            continue
        spread = peak - low
        if spread < MIN_CLIMB_SHARE * max(abs(peak), 1e-9):
            continue
        for (_, a), (t, b) in itertools.pairwise(s.points):
            fell = (a - b) if rising else (b - a)
            if fell < 0.5 * spread or not end_ts - RESET_BEFORE_SECONDS <= t <= end_ts + (
                RESET_AFTER_SECONDS
            ):
                continue
            before = [p for p in s.points if p[0] < t]
            if len(before) >= 4 and _steady(before, rising):
                return item.id, t
    return None


def still_filling_after(prom: list[EvidenceItem], end_ts: float) -> tuple[str, str] | None:
    """(evidence id, words) when a filesystem's free space, or a container's memory against
    its limit, keeps moving toward its ceiling after a resolved alert ended, as steadily as
    before: space was freed or memory released, but what fills it still writes."""
    for kind, rising, what in (
        ("host_filesystem_available", False, "the filesystem's free space keeps shrinking"),
        ("container_memory_ratio", True, "the container's memory keeps growing"),
    ):
        found = own_series(prom, kind)
        if not found:
            continue
        item, s = found
        after = [p for p in s.points if p[0] > end_ts + 60]
        before = [p for p in s.points if p[0] < end_ts - 60]
        if len(after) < 4 or len(before) < 4:
            continue
        if not _steady(after, rising):
            continue
        slope = theil_sen_slope(after) * 3600 * (1 if rising else -1)
        if slope <= 0 or (theil_sen_slope(before) * 3600 * (1 if rising else -1)) > 2 * slope:
            continue  # slower than before: what filled it has calmed down
        left = (1.0 - after[-1][1]) if rising else after[-1][1]
        hours = left / slope
        if hours > GROWTH_HORIZON_HOURS:
            continue
        when = f"about {hours * 60:.0f} min" if hours < 2 else f"about {hours:.1f} h"
        return item.id, (
            f"{what} after the recovery ({abs(slope) * 100:.1f} percentage points per hour, "
            f"{item.id}): what fills it is still at work, and at this rate it is back at the "
            f"{'limit' if rising else 'bottom'} in {when}"
        )
    return None


# A process growing by this much in the window, steadily, is what eats the host's memory.
MIN_PROCESS_GROWTH = 64 * 2**20


def _growing_process(prom: list[EvidenceItem]) -> tuple[str, str] | None:
    """(evidence id, words) of the process (process-exporter's group, else an instrumented
    process by its job) whose resident memory climbs steadily the most over the window."""
    for kind, key, what in (
        ("host_process_memory", "groupname", "process group"),
        ("host_instrumented_memory", "job", "process of job"),
    ):
        for item in of_kind(prom, kind):
            climbing = [
                s
                for s in item.series
                if s.labels.get(key)
                and (s.current or 0.0) - (s.minimum or 0.0) >= MIN_PROCESS_GROWTH
                and _climbs_steadily(s, rising=True)
            ]
            if not climbing:
                continue
            top = max(climbing, key=lambda s: (s.current or 0.0) - (s.minimum or 0.0))
            return item.id, (
                f"the {what} {top.labels[key]} grows with it, steadily ({_bytes(top.minimum or 0)}"
                f" to {_bytes(top.current or 0)} resident in the window, about "
                f"{_bytes(max(top.slope_per_hour, 0.0))} an hour): what holds the memory"
            )
    return None


# Growth that would take longer than this to reach the ceiling is not told as a cause.
GROWTH_HORIZON_HOURS = 7 * 24.0


def growth(prom: list[EvidenceItem]) -> Finding | None:
    """Memory or disk use growing steadily toward its ceiling: when it gets there.

    Container memory against its limit (a leak grows whatever the load; compare with CPU),
    host MemAvailable or filesystem space falling toward zero.
    """
    for kind, what, rising in (
        ("container_memory_ratio", "The container's memory working set", True),
        ("host_memory_available", "The host's available memory", False),
        ("host_filesystem_available", "The filesystem's free space", False),
    ):
        found = own_series(prom, kind)
        if not found:
            continue
        item, s = found
        slope = s.slope_per_hour if rising else -s.slope_per_hour
        if s.current is None or slope <= 0 or not _climbs_steadily(s, rising):
            continue
        if s.drops or s.change_point is not None:
            continue  # a step or a restart, not a steady climb
        left = (1.0 - s.current) if rising else s.current
        hours = left / slope
        if hours > GROWTH_HORIZON_HOURS:
            continue  # a drift that takes weeks is no cause of today's alert
        when = f"about {hours * 60:.0f} min" if hours < 2 else f"about {hours:.1f} h"
        share = f"{s.current:.0%} of the limit" if rising else f"{s.current:.0%} left"
        steady = ""
        cited = [item.id]
        cpu = own_series(prom, "container_cpu") if rising else None
        if cpu and cpu[1].trend in ("flat", "oscillating"):
            steady = " while its CPU use stays flat: a leak, not load"
            cited.append(cpu[0].id)
        grower = _growing_process(prom) if kind == "host_memory_available" else None
        holds = ""
        if grower:
            holds = f" {grower[1][0].upper()}{grower[1][1:]}."
            cited.append(grower[0])
        return Finding(
            f"{what} {'grows' if rising else 'shrinks'} steadily "
            f"({abs(s.slope_per_hour) * 100:.1f} percentage points per "
            f"hour, now {share}){steady}; at this rate it reaches "
            f"{'the limit' if rising else 'zero'} in {when}.{holds}",
            0.65,
            tuple(cited),
        )
    return None


def restarts(prom: list[EvidenceItem]) -> tuple[EvidenceItem, SeriesStats] | None:
    return own_series(prom, "container_restarts")


def no_restarts(prom: list[EvidenceItem]) -> Finding | None:
    """The restart counter stayed at zero: not a crash loop, whatever the alert's name."""
    found = restarts(prom)
    if found and (found[1].peak or 0.0) == 0:
        return Finding(
            "The container did not restart in the window (restart count 0): whatever stopped "
            "it happened once.",
            0.5,
            (found[0].id,),
            explains=False,
        )
    return None


def metric_shift(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """A level shift in the alert's own series: when the condition began, from what level;
    with a deploy logged shortly before it, the deploy is the likely cause."""
    found = own_series(prom, "alert_expression")
    if not found or found[1].change_point is None:
        return None
    item, s = found
    cp = s.change_point
    assert cp is not None
    text = (
        f"The alert's value {label_text(s.labels)} shifted from {fmt(cp.before)} to "
        f"{fmt(cp.after)} at {_clock(cp.at)}"
    )
    for log_item, template in templates(logs):
        if "deploy" in template.tags and cp.at - 900 <= template.first_seen <= cp.at + 120:
            minutes = max(0.0, (cp.at - template.first_seen) / 60)
            return Finding(
                text + f", {minutes:.0f} min after a deploy was logged: "
                f"'{_clip(template.example)}'. A regression in that deploy is the likely "
                "cause.",
                0.7,
                (item.id, log_item.id),
                remedy=LOG_REMEDIES["deploy"],
                topic="deploy",
            )
    return Finding(
        text + ": look for what changed then (a deploy, a configuration change, a failing "
        "dependency).",
        0.5,
        (item.id,),
        explains=False,
    )


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# --- logs ------------------------------------------------------------------------------------
LOG_REMEDIES_REBOOT = (
    "Check why the host rebooted (`last -x`, `journalctl --list-boots`, unattended-upgrades "
    "logs) and that every service came back: a unit that was started by hand and never "
    "enabled (`systemctl is-enabled UNIT`) does not start at boot."
)
# The first step for a cause named by a tagged template.
LOG_REMEDIES: dict[str, str] = {
    "firewall": "Check the host firewall for the blocked port: `ufw status numbered` or "
    "`iptables -S`/`nft list ruleset`; restore the allow rule that changed.",
    "path": "Test the path from the client's machine (`mtr -T -P PORT HOST`, `nc -vz HOST "
    "PORT`) and read the kernel log on both ends for drops (firewall, conntrack, link).",
    "conntrack": "Compare `conntrack -C` (or node_nf_conntrack_entries) with "
    "`sysctl net.netfilter.nf_conntrack_max`; raise the limit or shorten timeouts, and find "
    "what opens so many connections (`conntrack -L | awk '{print $5}' | sort | uniq -c`).",
    "ports": "Count the connections per state and destination (`ss -tan state time-wait | awk "
    "'{print $4}' | sort | uniq -c | sort -n`); find the client that opens one per request and "
    "give it keep-alive or a pool; widen `net.ipv4.ip_local_port_range` only as a stopgap.",
    "mtu": "Compare the interface's MTU (`ip link show DEV`) with the path's: `ping -M do -s "
    "8972 PEER` fails where jumbo frames are not carried end to end. Set the MTU back (or "
    "enable jumbo frames on every switch port of the path).",
    "link": "Check the interface: `ip -s link show DEV`, `ethtool DEV` (link, speed, duplex) "
    "and the kernel log; reseat or replace the cable/port, or check the virtual NIC's host.",
    "maintenance": "Confirm the maintenance with whoever announced it (the ticket, the "
    "change calendar) and when it ends; silence its alerts for the window next time "
    "(`amtool silence add instance=HOST --duration=1h`). Act only if it outlasts the window.",
    "disk_failure": "Check the array and the disk: `cat /proc/mdstat`, `mdadm --detail "
    "/dev/mdX`, `smartctl -a /dev/sdX`; replace the disk and add the new one to the array.",
    "nfs": "Check the file server and the path to it (`rpcinfo -p SERVER`, `showmount -e "
    "SERVER`, `ping`/`mtr` from this host); the blocked tasks resume once it answers. A mount "
    "that may fail without hanging its users needs `soft,timeo=...` or an automount.",
    "dns": "Resolve the failing name from the affected host (`dig NAME`, `getent hosts NAME`) "
    "and check /etc/resolv.conf and the DNS server.",
    "tls": "Inspect the certificate: `openssl s_client -connect HOST:PORT -servername HOST` "
    "(dates, chain, names); renew or fix the trust store.",
    "listen": "Check the listen address and port: `ss -ltnp`; a service bound to 127.0.0.1 "
    "or a port taken by another process needs its configuration fixed.",
    "reboot": LOG_REMEDIES_REBOOT,
    "deploy": "Compare the alert's metric before and after the deploy; roll back to the "
    "previous version if the change started with it.",
    "lock": "Find the lock holder (e.g. `pg_locks` joined with `pg_stat_activity`) and the "
    "long transaction or job behind it.",
    "disk": "Free space on the full filesystem (`df -h`, `du -xh --max-depth=2`).",
    "fs_error": "Read the kernel log (`journalctl -k | grep -iE 'I/O error|fs error|read-only'`) "
    "and the disk's health (`smartctl -a DEV`); deleting files will not help. Move the data "
    "off or replace the disk, then `fsck` the filesystem before remounting it read-write.",
    "config": "Fix the setting the process complains about and redeploy.",
    "clock": "Check time synchronisation: `timedatectl`, `chronyc tracking` / `ntpq -p`, and "
    "that NTP (UDP 123) to the time servers is reachable.",
    "shutdown": "Find who or what stopped it (`docker events --since 1h`, the deploy log, the "
    "orchestrator's events) and start it again if that was not intended.",
    "gc": GC_REMEDY,
}

# What a tagged template means, as a cause sentence; {line} is the quoted example.
LOG_CAUSES: dict[str, tuple[str, float, str]] = {
    # Before "reboot" and "shutdown": the reboot an operator announced is planned work.
    "maintenance": (
        "The machine was put into planned maintenance: {line} (at {when}). The outage is "
        "planned work, not a failure; it should end when the maintenance does.",
        0.75,
        "",
    ),
    "oom": ("The logs report an out-of-memory kill: {line}", 0.75, "oom_killed"),
    "firewall": (
        "A firewall drops the traffic: {line}. The service may be up but its port is "
        "blocked; check the firewall rules (ufw/iptables/nftables) changed around {when}.",
        0.75,
        "",
    ),
    "conntrack": (
        "The kernel's connection-tracking table is full and new connections are dropped: "
        "{line}. Connections (scrapes, probes, requests) time out while the services are up.",
        0.75,
        "",
    ),
    "ports": (
        "The machine runs out of local (ephemeral) ports: {line}. Connections in TIME_WAIT to "
        "one destination use up the port range (a client opening a new connection per request, "
        "keep-alive off), and new connections fail with EADDRNOTAVAIL.",
        0.75,
        "",
    ),
    "mtu": (
        "An interface's MTU changed or the path refuses large packets: {line} (at {when}). "
        "Packets larger than the path carries (jumbo frames across a 1500-byte switch path) "
        "are dropped: bulk transfers stall while pings and health checks pass.",
        0.75,
        "",
    ),
    "link": (
        "The network interface lost its link or renegotiated it: {line} (at {when}). Traffic "
        "to and from the host stops or slows while the link is down or degraded.",
        0.7,
        "",
    ),
    "disk_failure": (
        "A disk fails: {line} (at {when}). A failing disk stalls the reads that hit bad "
        "sectors, and a RAID array that dropped it runs without redundancy (and slower while "
        "it rebuilds).",
        0.75,
        "",
    ),
    "nfs": (
        "A network file system's server stopped answering: {line} (from {when}). Processes "
        "touching the mount hang in uninterruptible sleep (D state): load and iowait rise "
        "while the local disks stay idle.",
        0.75,
        "",
    ),
    "dns": (
        "Name resolution fails: {line}. Check the resolver (/etc/resolv.conf, the DNS "
        "server) and the record of the name being looked up.",
        0.7,
        "",
    ),
    "tls": (
        "TLS fails: {line}. Check the certificate's validity dates, chain and the host name it "
        "is issued for.",
        0.7,
        "",
    ),
    "listen": (
        "The process's listen address changed or could not be bound: {line}. A service that "
        "listens on 127.0.0.1 or a port in use is unreachable from outside.",
        0.65,
        "",
    ),
    "reboot": (
        "The host rebooted or was going down: {line} (at {when}).",
        0.7,
        "",
    ),
    "fs_error": (
        "The filesystem or the disk under it fails, not its free space: {line} (at {when}). "
        "After such errors the kernel remounts the filesystem read-only and writes fail.",
        0.75,
        "",
    ),
    "disk": ("The logs report a full disk: {line}", 0.7, ""),
    "lock": (
        "Work waits on locks: {line}. Lock contention stalls requests; find the long-running "
        "transaction or job holding the lock.",
        0.65,
        "",
    ),
    "config": ("The process fails on its configuration: {line}", 0.65, ""),
    "deploy": (
        "A new version or deploy started shortly before the alert: {line} (at {when}). A "
        "regression in it is the likely cause.",
        0.6,
        "",
    ),
    "clock": ("The clock is off: {line}. Check time synchronisation (NTP/chrony).", 0.6, ""),
    "change": (
        "A configuration-management run changed the machine shortly before: {line} (at "
        "{when}). What it removed or rewrote (a file, a credential, a config or firewall rule) "
        "is the first suspect.",
        0.6,
        "",
    ),
    "gc": ("Garbage collection stalls the process: {line}", 0.6, ""),
    "swap": ("The system is swapping: {line}", 0.55, ""),
    "queue": ("Work backs up: {line}", 0.5, ""),
    "network": ("Connections to a dependency fail: {line}", 0.55, ""),
    "crash": ("The process crashed: {line}", 0.6, ""),
    "failover": (
        "A failover changed which node is the primary: {line} (at {when}). Clients must "
        "follow the new primary; the old one comes back as a replica.",
        0.6,
        "",
    ),
    "shutdown": (
        "The process received a termination signal and shut down in an orderly way "
        "(stopped by an operator, a deploy or the orchestrator), not a crash: {line}",
        0.6,
        "",
    ),
}
# Tags that explain a cause on their own; "error" alone is only a symptom.
CAUSE_TAGS = tuple(LOG_CAUSES)


# A cause that repeats as it did before (an OOM kill or a bad setting at every restart of a
# crash loop) still explains the alert; other background lines do not.
_REPEATING_CAUSES = frozenset({"oom", "config", "crash"})
# A template logged before the alert as often as during it: not news, not a cause.
background = is_background


# bind()/listen() failing with EADDRNOTAVAIL: the machine lacks the address (not a shortage
# of local ports, which is connect()'s EADDRNOTAVAIL).
_BIND_ADDRESS = re.compile(
    r"\b(?:bind|listen)\b.{0,80}cannot assign requested address"
    r"|cannot assign requested address.{0,40}\b(?:bind|listen)\b",
    re.I,
)
# The kernel's and the network configuration's word on an interface that changed.
_INTERFACE_CHANGE = re.compile(
    r"\brenamed from \w+|Cannot find device|device \S+ does not exist|Link is Down", re.I
)


def log_causes(
    logs: list[EvidenceItem], limit: int = 3, boots: tuple[float, ...] = ()
) -> list[Finding]:
    """Cause sentences from the best-ranked tagged templates, one per tag, new ones first.
    ``boots``: when the machine booted (``boot_moments``); a start line soon after is the
    boot's restart, no deploy."""
    out: list[Finding] = []
    used: set[str] = set()
    for item, template in templates(logs):
        tag = next((t for t in CAUSE_TAGS if t in template.tags and t not in used), None)
        if tag is None:
            continue
        if tag not in _REPEATING_CAUSES and background(template):
            continue
        if (
            tag in ("shutdown", "network", "crash", "lock")
            and template.novelty == "steady"
            and (template.baseline_count > template.count)
        ):
            continue  # an old habit of the logs, not news
        if tag == "deploy" and template.novelty != "new":
            continue  # a version every line carries, or a start long before: no deploy now
        if tag == "deploy" and any(
            b <= template.first_seen <= b + START_AFTER_BOOT_SECONDS for b in boots
        ):
            continue
        sentence, confidence, family = LOG_CAUSES[tag]
        if tag == "shutdown" and (operator := _operator_command(logs)) is not None:
            item, template, sentence = operator
        if tag == "change":
            item, template = _most_destructive_change(logs) or (item, template)
        if tag == "tls" and (verdict := _PEER_REJECTS.search(template.example)):
            # A TLS alert is the other side's verdict on the certificate this side presented.
            sentence = (
                "The other side rejects this side's certificate with the TLS alert "
                f"'{verdict.group(1) or verdict.group(2)}': {{line}}. That alert is the "
                "peer's verdict on the client "
                "certificate this side presents for mutual TLS (nginx's proxy_ssl_certificate, "
                "a client's certificate file), not on the peer's own certificate. Renew or "
                "replace that client certificate and reload."
            )
        elif tag == "tls" and (mismatch := PROTOCOL_MISMATCH.search(template.example)):
            peer = _UPSTREAM.search(template.example)
            toward = f" toward {peer.group(1)}" if peer else ""
            sentence = (
                f"TLS fails on the protocol version, not on a certificate ('{mismatch.group(0)}')"
                f"{toward}: {{line}}. The two sides share no TLS version or cipher: one side's "
                "minimum is above what the other speaks (OpenSSL 3 and recent server releases "
                "default to TLS 1.2 or later; a legacy peer may speak only TLS 1.0/1.1). Allow "
                "the old protocol for "
                "that peer only (nginx `proxy_ssl_protocols`, OpenSSL's seclevel) or roll back, "
                "and move the peer to TLS 1.2."
            )
        elif tag == "ports" and _BIND_ADDRESS.search(template.example):
            # bind() refused, not connect(): the address is missing, no port is short.
            interface = next(
                (t for _, t in templates(logs) if _INTERFACE_CHANGE.search(t.example)), None
            )
            told = (
                f" The machine's interfaces changed: '{_clip(interface.example)}'."
                if (interface)
                else ""
            )
            sentence = (
                "The service cannot listen on its address because the machine does not have "
                "it: {line}." + told.replace("{", "{{").replace("}", "}}") + " The interface "
                "that carries the address is missing, renamed (predictable interface names "
                "change with a kernel, udev or hardware change) or down, or the address "
                "moved. Compare `ip -br addr` with the service's listen address and "
                "the network configuration's interface names, then restart the service."
            )
        elif tag == "dns" and TAGS["change"].search(template.example):
            # Not a lookup failing: configuration management rewrote the resolver's settings.
            sentence = (
                "Configuration management rewrote the machine's resolver settings shortly "
                "before: {line} (at {when}). Every lookup since goes through the new search "
                "domains, ndots, timeouts and servers: a search domain whose server does not "
                "answer, or ndots above the dots in a name, makes each lookup wait for a "
                "timeout first. Check `cat /etc/resolv.conf` and `time getent hosts NAME`, and "
                "revert the change in the manifest."
            )
        elif tag == "tls" and _RENEWAL.search(template.example):
            sentence = (
                "The certificate's renewal fails, so it will expire: {line}. Fix what the "
                "renewal reports (the ACME challenge's webroot or DNS record, the CA's answer), "
                "then renew by hand and check (`certbot renew --dry-run`, cert-manager's "
                "`kubectl describe certificate`)."
            )
        novelty = {"new": " (new in the window)", "surging": " (surging)"}.get(template.novelty, "")
        quoted = _clip(template.example)
        if tag == "change" and (removal := _REMOVAL.search(template.example)):
            # What was removed, and where: the words before "state=absent".
            start = template.example.rfind(" path=", 0, removal.start())
            quoted = "..." + _clip(template.example[max(start, removal.start() - 90) :])
        out.append(
            Finding(
                sentence.format(line=f"'{quoted}'", when=_clock(template.first_seen))
                + f" Seen {template.count}x{novelty} from {_clock(template.first_seen)}.",
                confidence,
                (item.id,),
                family,
                remedy=LOG_REMEDIES.get(tag, ""),
                topic=log_topic(tag, template.example),
            )
        )
        used.add(tag)
        if len(out) >= limit:
            break
    return out


# What a configuration-management run removed, rather than what it merely ensured.
_REMOVAL = re.compile(r"state=absent|ensure: (?:absent|removed)|ensure removed|\bremoved\b", re.I)


def _most_destructive_change(
    logs: list[EvidenceItem],
) -> tuple[EvidenceItem, LogTemplate] | None:
    """Of the configuration-management lines, the one that removed something."""
    return next(
        (
            (item, t)
            for item, t in templates(logs)
            if "change" in t.tags and _REMOVAL.search(t.example)
        ),
        None,
    )


# OpenSSL's and Go's words for a handshake with no common protocol version or cipher.
PROTOCOL_MISMATCH = re.compile(
    r"unsupported protocol|wrong version number|no protocols available|protocol version"
    r"|unsupported_protocol|no shared cipher|no cipher suites in common|handshake failure",
    re.I,
)
# The peer a proxy's error line names (nginx: upstream: "https://10.30.8.21:443/path").
_UPSTREAM = re.compile(r'upstream: "?(?:\w+://)?([^/" ,]+)')
# A certificate renewal's own failure (certbot, acme.sh, cert-manager), not a handshake's.
_RENEWAL = re.compile(r"renew|acme|challenge", re.I)
# OpenSSL's words for a TLS alert the peer sent ("sslv3 alert certificate expired:SSL alert
# number 45", "tlsv13 alert certificate required").
_PEER_REJECTS = re.compile(
    r"(?:sslv3|tlsv1\d?) alert (certificate (?:expired|revoked|unknown|required)"
    r"|bad certificate|unknown ca|unsupported certificate)"
    # Go's crypto/tls: "remote error: tls: expired certificate".
    r"|remote error: tls: ((?:expired|revoked|bad|unsupported|unknown) certificate"
    r"|unknown certificate authority|certificate required)",
    re.I,
)
# sudo's journal line: "alice : TTY=pts/0 ; PWD=... ; USER=root ; COMMAND=/usr/bin/systemctl ...".
OPERATOR_STOPPED = "An operator stopped it"


def stopped_by_operator(finding: Finding) -> bool:
    return finding.topic == "shutdown" and finding.cause.startswith(OPERATOR_STOPPED)


_SUDO_COMMAND = re.compile(r"(?:^|\s)([a-z_][\w.-]*) : .*?\bCOMMAND=(\S.*)$")


def _operator_command(
    logs: list[EvidenceItem],
) -> tuple[EvidenceItem, LogTemplate, str] | None:
    """An operator's command that stopped something, new before the alert: who and what."""
    for item, template in templates(logs):
        if "shutdown" not in template.tags or template.novelty != "new":
            continue
        found = _SUDO_COMMAND.search(template.example)
        if found:
            user, command = found.group(1), _clip(found.group(2).strip())
            return (
                item,
                template,
                f"{OPERATOR_STOPPED}: {user} ran `{command}` (at {{when}}), an orderly "
                "stop, not a crash: {line}",
            )
    return None


def error_messages(
    logs: list[EvidenceItem],
    limit: int = 3,
    *,
    skip: tuple[Finding, ...] = (),
    slow_burn: bool = False,
) -> Finding | None:
    """Up to ``limit`` error-level or error-worded templates that are news before the alert,
    best-ranked first, that no finding in ``skip`` quotes already.

    An error template already logged before the alert at about its pace (an AppArmor denial,
    a retry warning the service always logs) is background, not "the error": it is left out,
    unless the alert is a ``slow_burn`` (a disk or memory filling over hours: a failure that
    has gone on all along, an archiver that cannot ship WAL, is its likely cause). New and
    surging errors come before errors with no baseline to compare with.
    """
    said = " ".join(f.cause for f in skip)
    fresh: list[tuple[EvidenceItem, LogTemplate]] = []
    unknown: list[tuple[EvidenceItem, LogTemplate]] = []
    for item, template in templates(logs):
        if _clip(template.example) in said or not _is_error_line(template):
            continue
        if template.novelty in ("new", "surging"):
            fresh.append((item, template))
        elif slow_burn or (template.baseline_count == 0 and not background(template)):
            unknown.append((item, template))
    picked = (fresh + unknown)[:limit]
    if not picked:
        return None
    quoted = "; ".join(f"'{_clip(t.example)}'" for _, t in picked)
    return Finding(
        f"The affected workload logged errors around the alert: {quoted}",
        0.5,
        tuple(dict.fromkeys(item.id for item, _ in picked)),
    )


def news_before(logs: list[EvidenceItem], *, skip: tuple[Finding, ...] = ()) -> str | None:
    """A sentence for the summary quoting up to two templates first logged just before the
    alert that no finding quotes and no cause pattern tags, whatever their level: what started
    or changed then (a backup, a crawler, a batch run). Context for the reader; the engine
    does not claim them as the cause."""
    said = " ".join(f.cause for f in skip)
    # The lines a finding quoted, as words: another variant of one says nothing new.
    judged = [_words(t.example) for _, t in templates(logs) if _clip(t.example) in said]
    candidates = [
        template
        for _, template in templates(logs)
        if template.novelty == "new"
        and not any(_alike(_words(template.example), words) for words in judged)
        and not _is_error_line(template)
        and not {"crash", "oom"} & set(template.tags)
        and not is_background(template)
        and _clip(template.example) not in said
    ]
    # A line a cause pattern tags (an NFS server not responding, a resolver change) that no
    # finding quoted first; logins and their sessions last (what was run there says more).
    candidates.sort(key=lambda t: (not t.tags, bool(_SESSION_LINE.search(t.example))))
    picked = candidates[:2]
    if not picked:
        return None
    quoted = "; ".join(f"'{_clip(t.example)}' (from {_clock(t.first_seen)})" for t in picked)
    return f"New in the logs just before the alert (context, not shown to be the cause): {quoted}."


def _words(line: str) -> set[str]:
    """A line's words without its numbers (pids, times, counters)."""
    return {w for w in re.findall(r"[A-Za-z_][\w.-]*", line) if len(w) > 2}


def _alike(a: set[str], b: set[str]) -> bool:
    """Two lines sharing most of their words (Jaccard >= 0.6): variants of one message."""
    return bool(a and b) and len(a & b) / len(a | b) >= 0.6


# An interactive login and its session's bookkeeping (sshd, PAM, logind, systemd's scopes).
_SESSION_LINE = re.compile(
    r"pam_unix\(\S+:session\)|Accepted (?:publickey|password)|New session \d+"
    r"|Removed session \d+|Started session-\d+\.scope|Session \d+ of User|session-\d+\.scope"
)


def _is_error_line(template: LogTemplate) -> bool:
    return "error" in template.tags or template.level in ("error", "crit", "fatal", "emerg")


# A line saying a process dumped core (systemd-coredump, the kernel, a shell, systemd's exit).
_CORE_DUMP = re.compile(r"dumped core|core dumped|code=dumped|coredump", re.I)
_DUMPING_PROCESS = re.compile(r"Process \d+ \(([^)]+)\)|([\w.@-]+)\.service: Main process exited")


def core_dumps(logs: list[EvidenceItem]) -> Finding | None:
    """Core dumps behind a disk alert: a crashing process writes one per crash (systemd-coredump
    keeps them in /var/lib/systemd/coredump), so a crash loop fills the filesystem."""
    dumps = [(item, t) for item, t in templates(logs) if _CORE_DUMP.search(t.example)]
    if not dumps:
        return None
    # One crash can log several dump lines (the unit's exit, systemd-coredump's own).
    count = max(t.count + t.baseline_count for _, t in dumps)
    names = [
        m.group(1) or m.group(2) for _, t in dumps if (m := _DUMPING_PROCESS.search(t.example))
    ]
    who = f"{names[0]} " if names else "a process "
    example = max(dumps, key=lambda found: found[1].count)[1].example
    return Finding(
        f"{who}keeps crashing and dumping core ({count} core dumps logged in the windows read, "
        f"e.g. '{_clip(example)}'): each dump is written to disk (systemd-coredump keeps them in "
        "/var/lib/systemd/coredump), so the crash loop fills the filesystem.",
        0.75,
        tuple(dict.fromkeys(item.id for item, _ in dumps)),
        remedy=(
            "List and remove the dumps (`coredumpctl list`, `du -sh /var/lib/systemd/coredump`), "
            "stop the crash loop (fix or quarantine what makes the process crash, or stop its "
            "unit), and cap dump storage (`MaxUse=` in /etc/systemd/coredump.conf, or "
            "`Storage=none`)."
        ),
        topic="core_dump",
    )


# A container whose log output grew this many times over, behind a filling filesystem that
# holds container logs, is what fills it.
LOG_SURGE_RATIO = 5.0


# An absolute path in a log line (the file a write failed on).
_PATH = re.compile(r"(?<![\w.:/])(/(?:[\w.@+-]+/)+[\w.@+-]+)")
# Directories too generic to send anyone to with `du`.
_TOO_WIDE = frozenset({"/", "/var", "/srv", "/home", "/data", "/opt", "/tmp", "/var/lib"})  # noqa: S108 (a name, not a file)


# A line that writes or leaves something behind, or gives a size.
_WRITES = re.compile(
    r"\b(?:dump|writ|creat|sav|download|extract|cop(?:y|ied)|upload|export|spool|snapshot|"
    r"backup|archiv|cache|rotat|compress|generat)\w*|\b\d+(?:\.\d+)? ?(?:[KMGT]i?B|bytes)\b",
    re.I,
)


def writes_under_mount(logs: list[EvidenceItem], mountpoint: str) -> Finding | None:
    """What the machine's logs say is written under the filling mount over the last day
    (``mount_writes``): the most frequent line that writes or sizes something there."""
    for item in of_kind(logs, "mount_writes"):
        writing = [t for t in item.templates if _WRITES.search(t.example)]
        if not writing:
            continue
        top = max(writing, key=lambda t: t.count)
        return Finding(
            f"What writes under {mountpoint}, from the machine's logs of the last day: "
            f"'{_clip(top.example)}' ({top.count}x, {_clock(top.first_seen)} to "
            f"{_clock(top.last_seen)}). What it leaves there is the first suspect for the space.",
            0.65,
            (item.id,),
            "disk_space",
            remedy=f"Confirm with `du -xh --max-depth=2 {mountpoint} | sort -h | tail`; stop "
            "what keeps writing there, then delete or move what it left (or cap it: a retention, "
            "a rotation, a size limit).",
            topic="disk_writer",
        )
    return None


# The kubelet's reports of a full disk (evicting, collecting images): no write that failed.
_DISK_REPORT = re.compile(r"low on resource|reclaim|garbage collect|DiskPressure", re.I)


def first_to_meet_full_disk(logs: list[EvidenceItem]) -> Finding | None:
    """Of several writers failing with "No space left on device", the first to fail and the
    path it wrote: the process writing the most meets a full filesystem first, so the first
    failure often names what filled it, while the later ones are its victims."""
    failing = [
        (item, t)
        for item, t in templates(logs)
        if "disk" in t.tags and not _DISK_REPORT.search(t.example)
    ]
    if len({t.template for _, t in failing}) < 2:
        return None
    item, first = min(failing, key=lambda found: found[1].first_seen)
    later = [t for _, t in failing if t.first_seen > first.first_seen + 1.0]
    if not later:
        return None  # all at once: no order to read
    path = _PATH.search(first.example)
    where = ""
    if path:
        directory = path.group(1)
        while directory.count("/") > 3:
            directory = directory.rsplit("/", 1)[0]
        if directory.rsplit("/", 1)[0] not in ("", *_TOO_WIDE) or directory.count("/") == 3:
            where = directory
    return Finding(
        f"The first write to fail on the full filesystem was '{_clip(first.example)}' at "
        f"{_clock(first.first_seen)}, before the other failing writes: the process "
        "writing the most meets a full filesystem first, so it is likely what filled it"
        + (f" (look at {where})" if where else "")
        + ", and the others are its victims.",
        0.65,
        (item.id,),
        "disk_space",
        remedy=(
            f"Confirm what fills it: `du -xh --max-depth=2 {where or '<mount>'} | sort -h | "
            "tail`; stop that writer and delete or move what it left, then restart the "
            "services that failed on the full disk."
        ),
        topic="disk_writer",
    )


def chatty_container(logs: list[EvidenceItem], host: str) -> Finding | None:
    """The container whose log output surged, behind a free-space alert on the filesystem
    that keeps container logs (Docker's json-file logs grow without bound by default)."""
    for item in of_kind(logs, "log_volume"):
        here = [
            s
            for s in item.series
            if s.labels.get("container")
            and s.current
            and not (host and s.labels.get("host") and host_name(s.labels["host"]) != host)
        ]
        if not here:
            continue
        top = max(here, key=lambda s: s.current or 0.0)
        shift = top.change_point
        # A rise needs two buckets before it: a series' first bucket may be partial.
        rose = bool(
            shift
            and shift.after > shift.before
            and len([t for t, _ in top.points if t < shift.at]) >= 2
        )
        before = shift.before if shift and rose else top.baseline
        if not before or (top.current or 0.0) < LOG_SURGE_RATIO * before:
            continue
        since = f" since about {_clock(shift.at)}" if shift and rose else ""
        name = top.labels["container"]
        return Finding(
            f"Container {name} logs {(top.current or 0.0) / before:.0f} times as much as "
            f"before{since} ({_bytes(top.current or 0.0)} per 15 minutes in Loki, up from "
            f"{_bytes(before)}), the most of any container: its logs fill this filesystem. "
            "The container runtime keeps each container's output there (Docker's json-file "
            "logs, /var/lib/docker/containers/ID/ID-json.log), and it is never rotated unless "
            "the logging driver has max-size/max-file set. A raised log level (debug, trace) "
            "or a loop that logs an error per request does this.",
            0.75,
            (item.id,),
            remedy=(
                f"Check what {name} logs and lower its log level (or fix the loop that logs), "
                f"then truncate its log (`truncate -s 0 $(docker inspect -f '{{{{.LogPath}}}}' "
                f"{name})`); cap every container's logs with `log-opts` max-size/max-file in "
                "/etc/docker/daemon.json or the compose file's `logging:` section."
            ),
            replaces_steps=True,
            topic="container_logs",
        )
    return None


def busy_programs(logs: list[EvidenceItem]) -> Finding | None:
    """Which program fills a host's logs in the window (the likely consumer of a resource)."""
    counts: dict[str, int] = {}
    cited: list[str] = []
    for item, template in templates(logs):
        name = _program(template.example)
        if name:
            counts[name] = counts.get(name, 0) + template.count
            cited.append(item.id)
    if not counts:
        return None
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    top, lines = ranked[0]
    if lines < 2:
        return None
    others = ", ".join(f"{n} ({c})" for n, c in ranked[1:3])
    text = f"The logs in the window are dominated by {top} ({lines} lines)"
    text += f", then {others}" if others else ""
    return Finding(text + f"; {top} is the likely consumer.", 0.45, tuple(dict.fromkeys(cited)))


_ROTATION_FAILED = re.compile(
    r"logrotate\S*:? .*(?:fail|error|status=[1-9])|error: .*(?:logrotate|rotat)", re.I
)
_VERBOSE = re.compile(r"\b(?:DEBUG|TRACE)\b")
# Debug lines: at least this share of what the window logged, and this many.
VERBOSE_SHARE = 0.5
VERBOSE_MIN_LINES = 50


def logs_outgrow_the_disk(logs: list[EvidenceItem]) -> Finding | None:
    """Behind a free-space alert: log rotation that fails (whatever it should rotate grows
    without bound) and a service logging at debug level (far more than the disk was sized
    for): the two usual ways logs fill a root filesystem."""
    found = templates(logs)
    said: list[str] = []
    cited: list[str] = []
    steps: list[str] = []
    rotation = next(((i, t) for i, t in found if _ROTATION_FAILED.search(t.example)), None)
    if rotation:
        item, t = rotation
        said.append(
            f"log rotation fails ('{_clip(t.example)}', {t.count}x in the window, last at "
            f"{_clock(t.last_seen)}), so the logs it should rotate grow without bound"
        )
        cited.append(item.id)
        steps.append("run `logrotate -d /etc/logrotate.conf` to see the error and fix that file")
    total = sum(t.count for _, t in found)
    verbose = [
        (i, t) for i, t in found if t.level in ("debug", "trace") or _VERBOSE.search(t.example)
    ]
    lines = sum(t.count for _, t in verbose)
    if lines >= VERBOSE_MIN_LINES and lines >= VERBOSE_SHARE * total:
        said.append(
            f"{lines} of the {total} lines logged in the window are at DEBUG or TRACE level "
            f"('{_clip(verbose[0][1].example)}'): debug logging is on (left on after an "
            "incident?) and writes far more than the disk was sized for"
        )
        cited.append(verbose[0][0].id)
        steps.append("set the service's log level back to INFO (or WARN) and restart or reload it")
    if not said:
        return None
    return Finding(
        "Logs outgrow the disk: " + "; ".join(said) + ".",
        0.7,
        tuple(dict.fromkeys(cited)),
        "disk_space",
        remedy=(joined := "; ".join(steps))[:1].upper()
        + joined[1:]
        + "; then compress or truncate the biggest logs (`du -xh --max-depth=3 /var/log | sort "
        "-h | tail`).",
        topic="log_growth",
    )


# A line a program repeats while it retries the same work without pause.
_LOOPING = re.compile(
    r"\bretr(?:y|ies|ying)\b|\bstuck\b|\bspinning\b|\bbusy[- ]loop\b|\bagain\b"
    r"|\bdid not advance\b|\bno progress\b|\battempt \d{3,}",
    re.I,
)
LOOP_MIN_LINES = 20
LOOP_MIN_RATE_RATIO = 5.0


def retry_loop(logs: list[EvidenceItem]) -> Finding | None:
    """A program logging the same retry far faster than before (a job stuck in a loop): the
    likely consumer behind a CPU alert."""
    for item, t in templates(logs):
        surging = t.novelty == "new" or (t.rate_ratio or 0.0) >= LOOP_MIN_RATE_RATIO
        if t.count < LOOP_MIN_LINES or not surging or not _LOOPING.search(t.example):
            continue
        program = re.match(r"([A-Za-z][\w.-]{2,40})(?:\[\d+\])?: ", t.example)
        who = f"{program.group(1)} repeats" if program else "A program repeats"
        rate = f", {t.rate_ratio:.0f}x its earlier rate" if t.rate_ratio else ", new"
        return Finding(
            f"{who} the same work in a loop: '{_clip(t.example)}' ({t.count} lines in the "
            f"window{rate}, from {_clock(t.first_seen)}). A job retrying without pause keeps "
            "a CPU busy: it is the likely consumer.",
            0.65,
            (item.id,),
            remedy="Confirm with `top`/`pidstat 5` which process burns the CPU, stop or "
            "kill the stuck run, fix what it retries on, and give its retries a backoff "
            "and a limit.",
            topic="retry_loop",
        )
    return None


_QUIET_PROGRAMS = frozenset({"systemd", "kernel", "sshd", "cron", "CRON", "rsyslogd"})


def _program(line: str) -> str:
    match = re.search(r"(?:^|\s)([A-Za-z][\w.-]{2,40})\[\d+\]:", line)
    if not match or match.group(1) in _QUIET_PROGRAMS:
        return ""
    return match.group(1)


def first_series_line(prom: list[EvidenceItem]) -> str:
    """The alert's own series of its expression, compactly, for quoting."""
    found = own_series(prom, "alert_expression")
    if not found:
        return ""
    s = found[1]
    return (
        f"{label_text(s.labels)} current={fmt(s.current)} min={fmt(s.minimum)} "
        f"max={fmt(s.peak)} trend={s.trend}"
    )

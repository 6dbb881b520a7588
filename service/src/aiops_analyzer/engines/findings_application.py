"""Application causes read from the typed evidence: lock contention, failed jobs, deploy
regressions, a database or another dependency refusing work, queue consumers that stall.

The reasoning is the same whatever the stack: a ranked log template that is new or surging
before the alert (whatever its level) names what changed, and its first appearance is set
against the alert's start and the other new templates. Each reader returns a ``Finding`` with
the line it quotes and, when the evidence is strong enough, the root-cause family that
replaces the alert's own (a latency alert whose requests wait on row locks is lock contention;
an error-ratio alert whose errors are new since a deploy is a deploy regression).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiops_analyzer.engines.findings import (
    MAX_QUOTED,
    PROTOCOL_MISMATCH,
    START_AFTER_BOOT_SECONDS,
    Finding,
    _clip,
    _clock,
    boot_moments,
    log_topic,
    of_kind,
    own_series,
    templates,
)
from aiops_analyzer.engines.findings_dependency import (
    credentials_rejected,
    dependency_call,
    own_limit,
    schema_change_blocks,
    schema_mismatch,
    slow_call_line,
    slow_calls,
    slow_queries,
    store_refuses_writes,
)
from aiops_analyzer.evidence.logrank import TAGS
from aiops_analyzer.evidence.missing_path import REMOVAL_WORDS, ancestors, missing_path
from aiops_analyzer.evidence.series import fmt
from aiops_analyzer.schemas import EvidenceItem, LogTemplate, SeriesStats

# Alert families an application cause may replace: symptoms, not causes.
SYMPTOM_FAMILIES = frozenset({"error_rate", "latency", "traffic_anomaly", "unknown"})
# Tags of a dependency failing (the errors are someone else's): not a regression of this code.
DEPENDENCY_TAGS = ("database", "network", "dns", "tls", "rate_limit", "store_full")
# A release logs itself a few times (the upgrade, the start-up banner); more is a periodic line.
MAX_RELEASE_LINES = 3
# A deploy this long before the errors' first line (or the alert's level shift) can be blamed.
DEPLOY_LEAD_SECONDS = 1200.0
# A failure line names a job (not any process exiting) when it says one of these.
JOB_WORDS = re.compile(r"backup|cron|timer|\bjob\b|dump|rsync|restic|borg|snapshot", re.I)
# systemd's own words about a unit's end, less telling than the job's error.
_SYSTEMD = re.compile(
    r"Failed with result|status=\d+/|Main process exited|Failed to start|operation timed out"
)
# A run killed at its time limit (systemd's start timeout, coreutils timeout, a job runner's
# deadline): it hung on something, it did not fail with an error of its own.
_TIMED_OUT = re.compile(
    r"result 'timeout'|operation timed out|timed out\. (?:Terminating|Killing)"
    r"|timeout: sending signal|killed (?:by|after|on) (?:the )?time ?out|deadline exceeded",
    re.I,
)
# systemd's lines about starting or ending a unit: not what the run itself was doing.
_UNIT_LIFECYCLE = re.compile(r"^(?:Starting|Started|Finished|Stopping|Stopped|Failed to) \S")
ROLL_BACK = (
    "Roll back to the previous version (or image) now, then reproduce the new error or "
    "slowdown against the release's changes before deploying again."
)
# A regular line silent this long before the newest line of the window: it stopped.
QUIET_SECONDS = 300.0
ERROR_LEVELS = ("error", "crit", "fatal", "emerg", "alert")
# A "database" line that is the client's own pool waiting, not the database refusing: the
# connections are held by this service (slow queries, a leak), so the database's limit is not
# the first thing to look at.
_POOL_WAIT = re.compile(r"pool|acquir|obtain|not available|waiting for|trying to connect", re.I)
_DB_REFUSES = re.compile(r"too many|remaining connection slots|could not connect|system is", re.I)
_POOL_SENTENCE = (
    "The service's connection pool has no free connection: '{line}' ({seen}). Requests wait "
    "for a connection and time out; connections are held by slow queries, long transactions "
    "or a leak, or the pool is too small for the load."
)
_POOL_REMEDY = (
    "Compare the pool's active and pending connections with its size (HikariCP "
    "`hikaricp_connections_pending`, the pool's own stats); find what holds them (slow or idle "
    "in transaction sessions in `pg_stat_activity` ordered by `xact_start`, a code path that "
    "never returns its connection); raise the pool only if the database accepts more "
    "connections (`max_connections`)."
)


@dataclass(frozen=True)
class Verdict:
    """What the application readers found: findings to cite and, maybe, the family they name."""

    findings: tuple[Finding, ...]
    family: str = ""
    # Topics whose generic log sentence would mislead (a deploy that is not the cause).
    drop_topics: tuple[str, ...] = ()


def _fresh(template: LogTemplate) -> bool:
    """New or surging before the alert (the ranking compares rates, not raw counts)."""
    return template.novelty in ("new", "surging")


def _seen(template: LogTemplate) -> str:
    novelty = {"new": ", new in the window", "surging": ", surging"}.get(template.novelty, "")
    return f"{template.count}x from {_clock(template.first_seen)}{novelty}"


def _best(logs: list[EvidenceItem], tag: str) -> tuple[EvidenceItem, LogTemplate] | None:
    for item, template in templates(logs):
        if tag in template.tags and _fresh(template):
            return item, template
    return None


def _still_repeating(logs: list[EvidenceItem], tag: str) -> tuple[EvidenceItem, LogTemplate] | None:
    """A tagged line that began before the baseline's end and still repeats at least as often
    (consumers evicted from their group again and again while a backlog builds for hours)."""
    for item, template in templates(logs):
        if (
            tag in template.tags
            and template.count >= 2
            and (template.rate_ratio is None or template.rate_ratio >= 1.0)
        ):
            return item, template
    return None


def _is_error(template: LogTemplate) -> bool:
    return "error" in template.tags or template.level in ERROR_LEVELS


def _started_before(logs: list[EvidenceItem], symptom: LogTemplate) -> LogTemplate | None:
    """A one-off event first logged in the ten minutes before ``symptom`` began (a job, an
    import, a migration starting): the closest is the likely trigger."""
    events = [
        t
        for _, t in templates(logs)
        if t.novelty == "new"
        and t.count <= 3
        and not _is_error(t)
        and "lock" not in t.tags
        and symptom.first_seen - 600 <= t.first_seen <= symptom.first_seen
    ]
    return max(events, key=lambda t: t.first_seen, default=None)


def lock_contention(logs: list[EvidenceItem]) -> Finding | None:
    """Lock waits, deadlocks or lock timeouts that are new or surging before the alert."""
    found = _best(logs, "lock")
    if not found:
        return None
    item, template = found
    holder = _started_before(logs, template)
    suspect = (
        f" It began {(template.first_seen - holder.first_seen) / 60:.0f} min after "
        f"'{_clip(holder.example)}' was first logged: the likely lock holder."
        if holder
        else ""
    )
    named = _lock_holders(logs)
    if named:
        suspect += f" The database names the session holding the lock: process {', '.join(named)}."
    if tables := _locked_relations(logs):
        suspect += f" The waits are on rows of {', '.join(tables)}."
    return Finding(
        f"Lock contention: requests wait on database or application locks "
        f"('{_clip(template.example)}', {_seen(template)}). A long-running transaction or "
        "job holds a lock the others queue behind, which shows up as latency, lock timeouts "
        "and errors." + suspect,
        0.75,
        (item.id,),
        "lock_contention",
        remedy="Find the blocking session and what it runs: in PostgreSQL "
        "`SELECT pid, pg_blocking_pids(pid), state, xact_start, query FROM pg_stat_activity "
        "WHERE cardinality(pg_blocking_pids(pid)) > 0;` (MySQL: `SHOW ENGINE INNODB STATUS`, "
        "`performance_schema.data_lock_waits`); end or fix the long transaction or job.",
        replaces_steps=True,
        topic="lock",
    )


# PostgreSQL's DETAIL of a lock wait (log_lock_waits): "Process holding the lock: 47102."
_LOCK_HOLDER = re.compile(r"holding the lock: (\d+)")


def _lock_holders(logs: list[EvidenceItem]) -> list[str]:
    """The process ids the database says hold the lock others wait on, most cited first."""
    fresh_waits = [t for _, t in templates(logs) if "lock" in t.tags and _fresh(t)]
    return _most_cited(fresh_waits, _LOCK_HOLDER)[:3]


def _most_cited(cited_in: list[LogTemplate], pattern: re.Pattern[str]) -> list[str]:
    """What ``pattern``'s first group captures in the templates' examples, the most often
    logged first (each template counts its lines)."""
    counts: dict[str, int] = {}
    for template in cited_in:
        for match in pattern.finditer(template.example):
            counts[match.group(1)] = counts.get(match.group(1), 0) + template.count
    return sorted(counts, key=lambda value: -counts[value])


# PostgreSQL's CONTEXT of a lock wait: 'while updating tuple (412,7) in relation "inventory"'.
_LOCKED_RELATION = re.compile(
    r'while (?:updating|locking|deleting|inserting)[^"]* relation "([^"]+)"'
)


def _locked_relations(logs: list[EvidenceItem]) -> list[str]:
    """The tables whose rows the waiting sessions wanted, most cited first."""
    return _most_cited([t for _, t in templates(logs)], _LOCKED_RELATION)[:2]


def failed_job(logs: list[EvidenceItem], *, job_alert: bool) -> Finding | None:
    """A job (backup, cron, systemd timer) that exited with an error, with its own words.

    Behind an alert about a job a failure line is the cause even when it repeats every run
    (a job that fails every night fails the same way); otherwise it must be fresh.
    """
    best: tuple[EvidenceItem, LogTemplate] | None = None
    for item, template in templates(logs):
        if "job" not in template.tags or not (job_alert or _fresh(template)):
            continue
        # The job's own error (pg_dump: error, rsync error...) says more than systemd's
        # "Failed with result 'exit-code'": prefer a line that is not systemd's.
        if best is None or (
            _SYSTEMD.search(best[1].example) and not _SYSTEMD.search(template.example)
        ):
            best = (item, template)
    if not best:
        return None
    item, template = best
    # The job's other error lines of the same run (rsync's "Permission denied" before its exit).
    same_run = [
        t
        for _, t in templates(logs)
        if t is not template
        and _is_error(t)
        and not _SYSTEMD.search(t.example)
        and abs(t.first_seen - template.first_seen) <= 60
    ][:1]
    also = "".join(f" after '{_clip(t.example)}'" for t in same_run)
    also += _removed_before(logs, (template, *same_run))
    if _TIMED_OUT.search(template.example):
        return _timed_out(logs, item, template)
    # A run that gave up waiting for a lock: something else held it while the job ran.
    locked = any("lock" in t.tags for t in (template, *same_run))
    held = (
        " It could not take its lock: another process held it at the time, a concurrent run "
        "of this job or another job on the same resource (a check, a prune, a previous run "
        "still going)."
        if locked
        else ""
    )
    return Finding(
        f"The job failed: '{_clip(template.example)}'{also} ({_seen(template)}). Its last success "
        "is getting old because its runs end in this error, not because it did not start." + held,
        0.75,
        (item.id,),
        "failed_job",
        remedy="Run the job by hand as its own user and read its error (`systemctl status "
        "UNIT`, `journalctl -u UNIT -n 100`); fix what it reports (credentials, permissions, "
        "free space on the target, a reachable destination) and check the next run succeeds."
        + (
            " For a lock: find who holds it (`lsof` on the lock file, `ps`, the other jobs' "
            "schedules: `systemctl list-timers`, the crontabs) and keep their windows apart."
            if locked
            else ""
        ),
        replaces_steps=True,
        topic="job",
    )


def _removed_before(logs: list[EvidenceItem], failed: tuple[LogTemplate, ...]) -> str:
    """ ", and <line> had removed it": the line that deleted the path (or a directory above
    it) the job could not find."""
    for template in failed:
        path = missing_path(template.example)
        if not path:
            continue
        for parent in ancestors(path):
            for _, other in templates(logs):
                words = other.example
                if other is not template and parent in words and REMOVAL_WORDS.search(words):
                    return (
                        f"; {path} no longer exists: '{_clip(words)}' removed it at "
                        f"{_clock(other.first_seen)}"
                    )
    return ""


def _timed_out(logs: list[EvidenceItem], item: EvidenceItem, ended: LogTemplate) -> Finding:
    """A run killed at its time limit, with the last thing it said before: what it waited on."""
    said = [
        (i, t)
        for i, t in templates(logs)
        if t is not ended
        and not _is_error(t)
        and not _SYSTEMD.search(t.example)
        and not _UNIT_LIFECYCLE.search(t.example)
        and ended.first_seen - 600 <= t.first_seen <= ended.first_seen
    ]
    last = max(said, key=lambda found: found[1].first_seen, default=None)
    waited = (
        f" Its last words before that were '{_clip(last[1].example)}': it hung there."
        if last
        else ""
    )
    cited = (item.id, last[0].id) if last else (item.id,)
    return Finding(
        f"The job did not finish within its time limit and was killed: "
        f"'{_clip(ended.example)}' ({_seen(ended)}).{waited} A run that hangs waits on a "
        "dependency that does not answer, a lock or a slow transfer; it did not fail with an "
        "error of its own.",
        0.75,
        tuple(dict.fromkeys(cited)),
        "failed_job",
        remedy="Find what the run waits on (`systemctl status UNIT`, `journalctl -u UNIT`): "
        "reach the address it was connecting to from the host, look for the lock or transfer "
        "it is stuck on; fix that, and give the job's own calls a timeout shorter than the "
        "unit's (`TimeoutStartSec=`) so it fails with a reason. Raise the limit only if the "
        "work is legitimately longer.",
        replaces_steps=True,
        topic="job",
    )


def last_success_age(prom: list[EvidenceItem]) -> Finding | None:
    """The alert's own series is the age of a job's last success: say how old it is."""
    found = own_series(prom, "alert_expression")
    if not found or found[1].current is None:
        return None
    item, series = found
    hours = series.current / 3600 if series.current else 0.0
    if hours < 1:
        return None
    return Finding(
        f"The job's last success is {hours:.1f} h old (the alert's own series, "
        f"{fmt(series.current)} s): it has not completed since.",
        0.55,
        (item.id,),
        explains=False,
    )


def dependency_failure(logs: list[EvidenceItem]) -> Finding | None:
    """A database refusing connections, a pool exhausted, a downstream rate limit."""
    for tag, sentence, remedy in (
        (
            "database",
            "The database refuses or runs out of connections: '{line}' ({seen}). Requests "
            "that need it fail with 5xx; the database's connection limit (or the pool) is the "
            "bottleneck, not the web tier.",
            "Check the database's connections against its limit (`SELECT count(*), state FROM "
            "pg_stat_activity GROUP BY state;` and `SHOW max_connections;`); find the client "
            "holding or leaking connections, put a pooler (PgBouncer) in front, or size the "
            "pools to fit the limit.",
        ),
        (
            "rate_limit",
            "A downstream service rate-limits the calls: '{line}' ({seen}). Work slows down or "
            "fails while the dependency answers 429 / Too Many Requests.",
            "Check the dependency's rate limit and the retry policy (back off on 429, honour "
            "Retry-After); lower the concurrency of the callers or raise the quota.",
        ),
    ):
        found = _best(logs, tag)
        if found and "auth" in found[1].tags:
            continue  # refused credentials, not connections: findings_dependency names it
        if found:
            item, template = found
            topic = log_topic(tag, template.example)
            if (
                tag == "database"
                and _POOL_WAIT.search(template.example)
                and not _DB_REFUSES.search(template.example)
            ):
                sentence, remedy, topic = _POOL_SENTENCE, _POOL_REMEDY, "pool"
                if leak := _leak_report(logs):
                    sentence += f" The pool reports leaked connections: '{_clip(leak.example)}'."
            return Finding(
                sentence.format(line=_clip(template.example), seen=_seen(template)),
                0.75,
                (item.id,),
                remedy=remedy,
                topic=topic,
            )
    return None


# A pool's leak detection (HikariCP's leakDetectionThreshold, c3p0, Tomcat JDBC's abandoned
# connections): a code path that never returns its connection, whenever it began.
_LEAK = re.compile(r"connection leak|leak detect|abandoned connection|unreturned connection", re.I)


def _leak_report(logs: list[EvidenceItem]) -> LogTemplate | None:
    """The pool's own report of a leaked connection, new or not (leaks that began with a
    release hours ago fill the pool slowly)."""
    return next((t for _, t in templates(logs) if _LEAK.search(t.example)), None)


def deploy_regression(
    prom: list[EvidenceItem], logs: list[EvidenceItem], *, killed: bool = False
) -> Finding | None:
    """A deploy (a new version line, a restarted container) followed by errors that did not
    exist before it; errors that are a dependency's (refused connections, DNS, TLS, 429) are
    not the deploy's. ``killed``: the OOM killer restarts the process, which prints its own
    start-up banner each time: that banner is no release."""
    deploy = _deploy(prom, logs)
    if deploy is None:
        return None
    banner = deploy.template is not None and _START_BANNER.search(deploy.template.example)
    if killed and banner:
        return None
    if banner and any(
        deploy.since - START_AFTER_BOOT_SECONDS <= at <= deploy.since + 60
        for at in boot_moments(prom)
    ):
        return None  # the machine booted just before: the service started again, no release
    since = deploy.since
    new_errors = [
        (item, t)
        for item, t in templates(logs)
        if t is not deploy.template
        and _is_error(t)
        # The kernel's report of an OOM kill is the kill's, not the new version's error.
        and not {"oom", "kernel"} & set(t.tags)
        and t.novelty in ("new", "surging")
        and since - 60 <= t.first_seen <= since + DEPLOY_LEAD_SECONDS
    ]
    shift = own_series(prom, "alert_expression")
    cp = shift[1].change_point if shift else None
    stepped_up = (
        cp is not None
        and cp.after > cp.before
        and since - 60 <= cp.at <= since + DEPLOY_LEAD_SECONDS
    )
    if not new_errors:
        if not (shift and cp and stepped_up) or _new_dependency_errors(logs):
            return None
        # No new error line (a slower release), but the alert's own value stepped up after it.
        return Finding(
            f"A deploy regression: {deploy.what} at "
            f"{_clock(since)}, and {max(0.0, (cp.at - since) / 60):.0f} min later the alert's "
            f"value stepped from {fmt(cp.before)} to {fmt(cp.after)} "
            f"({_clock(cp.at)}). The new version made it worse.",
            0.7,  # the same as findings.metric_shift's reading of it, which is kept first
            (deploy.item_id, shift[0].id),
            "deploy_regression",
            remedy=ROLL_BACK,
            topic="deploy",
        )
    if any(_dependency_failing(t) for _, t in new_errors) and not _released_and_failing(
        deploy, [t for _, t in new_errors]
    ):
        return None  # the deploy happened, but the new errors are a dependency failing
    # The release's own errors first: a neighbour's release also breaks the calls to it.
    new_errors.sort(key=lambda found: _dependency_failing(found[1]))
    quoted = "; ".join(f"'{_clip(t.example)}'" for _, t in new_errors[:2])
    minutes = max(0.0, (min(t.first_seen for _, t in new_errors) - since) / 60)
    cited = [deploy.item_id, *(i.id for i, _ in new_errors)]
    if shift and stepped_up:
        cited.append(shift[0].id)
    return Finding(
        f"A deploy regression: {deploy.what} at "
        f"{_clock(since)}, and {minutes:.0f} min later errors that never appeared before it "
        f"began: {quoted}. The new version introduced them.",
        # The failing process's own start-up banner ("starting search version=3.2.0") says
        # which version crashes, not that a release broke it: the finding stands, but only a
        # release seen apart from it (a package upgraded, a rollout, a new image) names the
        # category (categories._MIN_CONFIDENCE_FOR).
        0.75 if banner else 0.8,
        tuple(dict.fromkeys(cited)),
        "deploy_regression",
        remedy=ROLL_BACK,
        topic="deploy",
    )


def _dependency_failing(template: LogTemplate) -> bool:
    """An error that is a dependency's failure, not the new version's. A handshake with no
    common TLS version is the new version's: its client defaults changed (a newer OpenSSL
    refuses the legacy peer it talked to before)."""
    if "tls" in template.tags and PROTOCOL_MISMATCH.search(template.example):
        return False
    return any(tag in template.tags for tag in DEPENDENCY_TAGS)


# A line read from another stream is prefixed with its stream's name ("search-api: ...").
_SPEAKER = re.compile(r"^([A-Za-z][\w.-]*): ")


def _released_and_failing(deploy: _Deploy, errors: list[LogTemplate]) -> bool:
    """The release is a neighbour's (a dependency's stream logged it) and that neighbour's own
    new errors are not a dependency's: the subject's failing calls to it are its release's."""
    if deploy.template is None or not (speaker := _SPEAKER.match(deploy.template.example)):
        return False
    return any(
        not _dependency_failing(t) and t.example.startswith(speaker.group(0)) for t in errors
    )


_START_BANNER = re.compile(r"\bstart(?:ing|ed)?\b|\bboot(?:ing|ed)?\b", re.I)


@dataclass(frozen=True)
class _Deploy:
    """A deploy seen in the evidence: what to say of it, when, and the item that shows it."""

    item_id: str
    what: str
    since: float
    template: LogTemplate | None = None


def _deploy(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> _Deploy | None:
    """A new version's start line, else a container that came back on a new image."""
    # The new version's start line rather than the old one's shutdown (both name a version).
    lines = [
        (item, t)
        for item, t in templates(logs)
        if "deploy" in t.tags and t.novelty == "new" and not _is_error(t)
    ]
    # A one-off line dates the release (a package upgraded, a start-up banner); a periodic
    # line that names the version ("stats ... version=2.14.0") is first seen wherever the read
    # of its stream began.
    line = min(
        lines,
        key=lambda found: ("shutdown" in found[1].tags, found[1].count > MAX_RELEASE_LINES),
        default=None,
    )
    if line is not None:
        item, template = line
        return _Deploy(
            item.id, f"'{_clip(template.example)}' was logged", template.first_seen, template
        )
    return _new_image(prom)


def _new_image(prom: list[EvidenceItem]) -> _Deploy | None:
    """The container's newest image started within the window after an older one ran: a
    redeploy, whether or not the new version logs its version."""
    for item in of_kind(prom, "container_image"):
        by_name: dict[str, list[SeriesStats]] = {}
        for series in item.series:
            if series.points and series.labels.get("image"):
                by_name.setdefault(series.labels.get("name", ""), []).append(series)
        for name, runs in by_name.items():
            if len({s.labels["image"] for s in runs}) < 2:
                continue
            runs.sort(key=lambda s: s.points[0][0])
            old, new = runs[-2], runs[-1]
            if new.points[0][0] <= old.points[0][0]:
                continue  # both ran from the window's start: no change seen
            # The start time series carries the start itself: the redeploy's moment.
            since = new.current if new.current else new.points[0][0]
            return _Deploy(
                item.id,
                f"{name or 'the container'} was redeployed from image {old.labels['image']} "
                f"to {new.labels['image']}",
                since,
            )
    return None


def _went_quiet(logs: list[EvidenceItem]) -> tuple[EvidenceItem, LogTemplate] | None:
    """The busiest regular line of the baseline that stopped well before the window's end:
    the work it reports (a consumer's commits, a worker's batches) stopped then."""
    quiet = [
        (item, t)
        for item, t in templates(logs)
        if t.baseline_count >= 5
        and item.window_end
        and t.last_seen < min(item.window_end, _newest(logs)) - QUIET_SECONDS
    ]
    return max(quiet, key=lambda found: found[1].baseline_count, default=None)


def _newest(logs: list[EvidenceItem]) -> float:
    return max((t.last_seen for _, t in templates(logs)), default=0.0)


def _excerpt(template: LogTemplate, tag: str) -> str:
    """The part of a long line around what its tag matched (a Kafka client's line states the
    reason after 150 characters of prefix)."""
    line = " ".join(template.example.split())
    match = TAGS[tag].search(line) if tag in TAGS else None
    if match is None or len(line) <= MAX_QUOTED:
        return _clip(line)
    start = max(0, match.start() - 50)
    return "..." + _clip(line[start:])


def consumer_stalled(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> Finding | None:
    """A queue alert whose consumers stopped, left their group or went quiet: why the backlog
    grows."""
    lag = own_series(prom, "alert_expression")
    rising = bool(lag and lag[1].trend == "rising")
    found = _best(logs, "consumer") or (_still_repeating(logs, "consumer") if rising else None)
    quiet = _went_quiet(logs)
    said: list[str] = []
    cited: list[str] = []
    if found:
        said.append(f"'{_excerpt(found[1], 'consumer')}' ({_seen(found[1])})")
        cited.append(found[0].id)
    if quiet:
        said.append(
            f"its regular line '{_clip(quiet[1].example)}' was last logged at "
            f"{_clock(quiet[1].last_seen)}"
        )
        cited.append(quiet[0].id)
    if lag and rising:
        said.append(f"the backlog rises ({fmt(lag[1].baseline)} -> {fmt(lag[1].current)})")
        cited.append(lag[0].id)
    if (found or quiet) and (consumer := _named_consumer(logs)):
        said.append(f"the consumer is {consumer[1]} ('{_clip(consumer[0].example)}')")
    # Work that got slow first: a batch that outlasts the poll interval (Kafka's
    # max.poll.interval.ms) makes the group evict its consumer, again and again.
    slow = slow_call_line(logs)
    if found and slow and slow[1].first_seen <= found[1].first_seen:
        said.append(f"its calls got slow first: '{_clip(slow[1].example)}' ({_seen(slow[1])})")
        cited.append(slow[0].id)
    evicted = any(_EVICTED.search(t.example) for _, t in templates(logs) if "consumer" in t.tags)
    if found and evicted:
        # Evicted and rejoining: the consumer is alive, but each batch outlasts the poll
        # interval, so its commit is refused and the same records come back.
        return Finding(
            "The group's consumers are evicted and rejoin again and again (a rebalance loop): "
            + "; ".join(said)
            + ". A member that does not poll again within max.poll.interval.ms is removed "
            "from the group, its offset commit is refused (CommitFailedException) and its "
            "partitions are reassigned, so the same records are processed again and the "
            "backlog only grows.",
            0.75,
            tuple(dict.fromkeys(cited)),
            "queue_lag",
            remedy="Make one poll's work fit the interval: lower `max.poll.records` (or speed "
            "up the processing of a batch), or raise `max.poll.interval.ms` above the slowest "
            "batch; adding consumers does not help while each one is evicted.",
            replaces_steps=True,
            topic="consumer",
        )
    if found or quiet:
        return Finding(
            "The consumer stopped consuming: " + "; ".join(said) + ".",
            0.7,
            tuple(dict.fromkeys(cited)),
            "queue_lag",
            remedy="Check the consumer group's members and their last commits "
            "(`kafka-consumer-groups.sh --describe --group GROUP`, RabbitMQ's consumers per "
            "queue, the worker processes); restart the stuck consumer and fix what stopped it.",
            topic="consumer",
        )
    return None


# A consumer removed from its group and joining again (Kafka's clients and coordinator).
_EVICTED = re.compile(
    r"rebalanc|LeaveGroup|left (?:the )?(?:consumer )?group|poll timeout has expired"
    r"|max\.poll\.interval|CommitFailedException|\(Re-\)joining group",
    re.I,
)


# The position of a record in a consumer's words: "shipments.v1-3@1882211", "offset 1882211".
_RECORD_OFFSET = re.compile(r"@(\d{3,})\b|\boffset[=: ]+(\d{3,})\b", re.I)


def poison_record(logs: list[EvidenceItem]) -> Finding | None:
    """A consumer failing on one record and retrying it forever, and, when another stream
    logged that record's offset, who produced it."""
    # A loop on one record repeats for as long as the record is there: hours before the
    # backlog crosses the alert's threshold, it is still the cause.
    found = _best(logs, "poison") or _still_repeating(logs, "poison")
    if not found:
        return None
    item, template = found
    said = ""
    offsets = {a or b for a, b in _RECORD_OFFSET.findall(template.example)}
    for _, other in templates(logs):
        if other is template or "poison" in other.tags:
            continue
        if offsets & {a or b for a, b in _RECORD_OFFSET.findall(other.example)}:
            said = f" The same record in another stream: '{_clip(other.example)}'."
            break
    return Finding(
        f"One record blocks the consumer: '{_excerpt(template, 'poison')}' ({_seen(template)}). "
        "It fails on that record and retries it without end, so nothing behind it on that "
        "partition or queue is consumed while the others move." + said,
        0.75,
        (item.id,),
        "queue_lag",
        remedy="Find why the record fails (its type or format against the consumer's "
        "version); skip it or send it to a dead-letter topic (Spring Kafka's "
        "DeadLetterPublishingRecoverer, a bounded retry) or, on RabbitMQ, reject it without "
        "requeue into a dead-letter exchange, and fix the consumer or the producer that sent "
        "it. More consumers would only fail on it too.",
        replaces_steps=True,
        topic="poison",
    )


# A line of another stream (named "service: ...") in which a consumer attaches to the queue.
_ATTACHES = re.compile(
    r"^([\w.-]+): .*\b(?:consuming|consumer (?:started|attached)|subscribed)\b", re.I
)


def _named_consumer(logs: list[EvidenceItem]) -> tuple[LogTemplate, str] | None:
    """The service whose lines say it consumes the queue (read by the queue's name)."""
    for _, template in templates(logs):
        if match := _ATTACHES.search(template.example):
            return template, match.group(1)
    return None


def _new_dependency_errors(logs: list[EvidenceItem]) -> bool:
    """New error templates that say a dependency fails (refused, DNS, TLS, timeouts)."""
    return any(
        _is_error(t)
        and t.novelty in ("new", "surging")
        and any(g in t.tags for g in DEPENDENCY_TAGS)
        for _, t in templates(logs)
    )


def _quoted_topics(logs: list[EvidenceItem], found: list[Finding]) -> list[str]:
    """Log-cause tags whose best line a finding here already quotes with its meaning (the
    database's FATAL is no crash of this process; a job's error line is a failed run)."""
    said = " ".join(f.cause for f in found)
    first: dict[str, LogTemplate] = {}
    for _, template in templates(logs):
        for tag in template.tags:
            first.setdefault(tag, template)
    own = {f.topic for f in found}
    return [tag for tag, t in first.items() if tag not in own and _clip(t.example) in said]


def _crashed_after_stopping(logs: list[EvidenceItem]) -> bool:
    """An orderly stop followed by fresh crashes: it was stopped to start again (a package
    upgrade, a restart), and what it does now is crash, which is the cause to tell."""
    stops = [t for _, t in templates(logs) if "shutdown" in t.tags and _fresh(t)]
    crashes = [t for _, t in templates(logs) if "crash" in t.tags and _fresh(t)]
    first_stop = min((t.first_seen for t in stops), default=None)
    return first_stop is not None and any(t.first_seen > first_stop for t in crashes)


def _steady_topics(logs: list[EvidenceItem]) -> list[str]:
    """Log-cause tags whose best-ranked line is old news (as common before the alert): with an
    application cause found, a steady firewall or crash line is background, not a rival."""
    first: dict[str, LogTemplate] = {}
    for _, template in templates(logs):
        for tag in template.tags:
            first.setdefault(tag, template)
    return [tag for tag, t in first.items() if t.novelty == "steady" and not _fresh(t)]


def read(
    family: str, prom: list[EvidenceItem], logs: list[EvidenceItem], expression_family: bool
) -> Verdict:
    """Every application finding for an alert of ``family``, and the family they name.

    ``expression_family``: the alert was placed in its family by its expression, which a log
    line does not overrule for a job or queue alert.
    """
    out: list[Finding] = []
    named = ""
    dependency_failed = False
    if family == "failed_job":
        job = failed_job(logs, job_alert=True)
        out += [f for f in (job, last_success_age(prom)) if f]
    elif family == "queue_lag":
        stalled = poison_record(logs) or consumer_stalled(prom, logs)
        out += [f for f in (stalled, dependency_failure(logs)) if f]
        out += [f for f in (dependency_call(logs), store_refuses_writes(logs)) if f]
        # Only here: behind a latency alert, the service's own "slow request" lines are the
        # symptom, not a dependency.
        if not out and (slow := slow_calls(logs)):
            out.append(slow)
    else:
        # A migration's ALTER behind timeouts is the lock the queries wait for.
        lock = lock_contention(logs) or schema_change_blocks(logs)
        deploy = deploy_regression(prom, logs, killed=family == "oom_killed")
        dependency = dependency_failure(logs)
        job = failed_job(logs, job_alert=False) if not expression_family else None
        # Someone else's failure seen from here (a store refusing writes, a dependency down
        # or slow), or a limit of the service's own.
        store, call, limit = store_refuses_writes(logs), dependency_call(logs), own_limit(logs)
        slow = slow_queries(logs) if not lock else None
        auth = credentials_rejected(logs)
        schema = schema_mismatch(logs)
        found = (schema, lock, deploy, dependency, store, call, auth, limit, slow, job)
        out += [f for f in found if f]
        dependency = dependency or store or call
        dependency_failed = dependency is not None or _new_dependency_errors(logs)
        # A pool with no free connection while requests wait on locks: the waits hold them.
        pool_held = dependency is not None and dependency.topic == "pool"
        if family in SYMPTOM_FAMILIES or family == "lock_contention":
            if lock and (family in ("latency", "lock_contention") or not dependency or pool_held):
                named = "lock_contention"
            elif deploy and not dependency:
                named = "deploy_regression"
            elif job and family == "unknown" and JOB_WORDS.search(job.cause):
                named = "failed_job"
    drop: list[str] = []
    # A deploy was logged, but the new errors are a dependency's: the deploy is not the cause.
    if dependency_failed and not any(f.topic == "deploy" for f in out):
        drop.append("deploy")
    if named == "deploy_regression":
        drop.append("shutdown")  # the old version stopping is the deploy itself
    if _crashed_after_stopping(logs):
        drop.append("shutdown")  # the stop was a restart (an upgrade's), and the new one fails
    drop += _quoted_topics(logs, out)
    if named or any(f.explains and f.confidence >= 0.75 for f in out):
        drop += _steady_topics(logs)
    return Verdict(tuple(out), named, tuple(drop))

"""What the application's own logs say about the things it calls, and its own limits.

A service's errors are often someone else's: a dependency that refuses connections (down,
restarting, not listening), one that answers too slowly (the calls time out), a data store
that refuses writes (Redis at ``maxmemory``, a read-only index). Or the service ran into a
limit of its own (file descriptors, threads, workers) while every dependency is healthy. Each
reader takes the best-ranked template of its kind that is new or surging before the alert
and says which it is, naming the dependency's address when the line gives it; a line that is
as common before the alert is background and names nothing.
"""

from __future__ import annotations

import re

from aiops_analyzer.engines.findings import Finding, _clip, _clock, templates
from aiops_analyzer.evidence.logline import ERROR_LEVELS
from aiops_analyzer.evidence.schema_change import MIGRATION_RUN, missing_object
from aiops_analyzer.schemas import EvidenceItem, LogTemplate

# Tags whose own findings say more about a line than "a call failed" (a pool waiting, a lock
# timeout, a job's exit, a consumer's session timeout).
_MORE_SPECIFIC = (
    "auth",
    "database",
    "lock",
    "store_full",
    "resource_limit",
    "rate_limit",
    "job",
    "consumer",
    "dns",
    "tls",
)
# The dependency refuses, resets or is unreachable: it is down or not listening.
_DOWN = re.compile(
    r"refused|ECONNREFUSED|reset by peer|ECONNRESET|no route to host|unreachable|EHOSTUNREACH"
    r"|ENETUNREACH|no live upstreams|Unavailable|upstream connect error|circuit ?breaker"
    r"|CallNotPermitted|Bad Gateway|closed the connection unexpectedly|RemoteDisconnected"
    r"|Connection aborted|socket hang up|broken pipe|prematurely closed",
    re.I,
)
# The dependency answers too slowly: the calls run into their timeout.
_SLOW = re.compile(r"timed? ?out|timeout|deadline|ETIMEDOUT|Gateway Time-?out", re.I)
# The address a client line names: a URL's host, nginx's `upstream: "..."`, `dial tcp
# HOST:PORT`, Node's `ECONNREFUSED 10.0.0.5:6379`, or a bare host:port.
_ADDRESS = re.compile(
    r"\b(?:https?|grpcs?|postgres(?:ql)?|mysql|redis|amqps?|mongodb|nats|kafka)://"
    r"(?:[^@\s/]+@)?([\w.-]+(?::\d{2,5})?)"
    r"|\b(\d{1,3}(?:\.\d{1,3}){3}:\d{2,5})\b"
    r"|(?<![\w.:/-])([a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*:\d{2,5})\b"
    r"|\b(?:upstream|host|server|peer|backend|target|addr|address|endpoint|dependency)"
    r"=\"?([\w.-]+(?::\d{2,5})?)"
)


# A connection written local->remote (Go's net errors, conntrack, ss).
_LOCAL_TO_REMOTE = re.compile(r"\S+:\d{1,5}->(\[?[\w.:-]+\]?:\d{1,5})\b")


def seen(template: LogTemplate) -> str:
    novelty = {"new": ", new in the window", "surging": ", surging"}.get(template.novelty, "")
    return f"{template.count}x from {_clock(template.first_seen)}{novelty}"


def news(template: LogTemplate) -> bool:
    """New or surging before the alert, or logged when there was no baseline to compare
    with (a stream that only has recent lines cannot show that anything is old news)."""
    return template.novelty in ("new", "surging") or template.baseline_count == 0


def _failing(template: LogTemplate) -> bool:
    """A line that reports a failure (an error or warning level, or error words)."""
    return template.level in ERROR_LEVELS or template.level == "warn" or "error" in template.tags


def _fresh_with(
    logs: list[EvidenceItem], tag: str, *, failing: bool = True
) -> tuple[EvidenceItem, LogTemplate] | None:
    for item, template in templates(logs):
        if tag not in template.tags or not news(template):
            continue
        if failing and not _failing(template):
            continue
        return item, template
    return None


# `handler.go:57`, `worker.py:42`: a place in the code, not an address.
_SOURCE_FILE = re.compile(
    r"\.(?:go|py|js|mjs|ts|java|kt|scala|rb|rs|php|cs|cc|cpp|c|h|ex|exs)(?::|$)"
)


# libpq: connection to server at "db" (10.0.5.4), port 5432 failed
_SERVER_AT = re.compile(r'server at "([\w.:-]+)"(?: \([\w.:]+\))?, port (\d+)')


def address(line: str) -> str:
    """The dependency's address in a client's error line, or ""."""
    libpq = _SERVER_AT.search(line)
    if libpq:
        return f"{libpq.group(1)}:{libpq.group(2)}"
    connection = _LOCAL_TO_REMOTE.search(line)
    if connection:  # Go's "read tcp 10.0.5.7:41070->10.0.0.9:5432": the remote end
        return connection.group(1)
    for match in _ADDRESS.finditer(line):
        found = next((g for g in match.groups() if g), "")
        if found and not _SOURCE_FILE.search(found):
            return found
    return ""


def dependency_call(logs: list[EvidenceItem]) -> Finding | None:
    """Calls to a dependency that are refused (it is down) or time out (it is slow)."""
    for item, template in templates(logs):
        if "network" not in template.tags or not news(template):
            continue
        if not _failing(template) or any(tag in template.tags for tag in _MORE_SPECIFIC):
            continue
        line = template.example
        # "connect() failed (110: Connection timed out)" is slow; "(111: Connection
        # refused)" is down: the refusal wins when both words appear.
        down, slow = _DOWN.search(line), _SLOW.search(line)
        if not (down or slow):
            continue
        where = address(line)
        to = f" ({where})" if where else ""
        quoted = f"'{_clip(line)}' ({seen(template)})"
        if down:
            return Finding(
                f"A dependency{to} refuses or drops the calls: {quoted}. The requests that "
                "need it fail, so the errors are its outage seen from this service: it is "
                "down, restarting, not listening on that port, or unreachable from here.",
                0.75,
                (item.id,),
                remedy=f"Check the dependency{to}: is it running and listening (its health "
                "endpoint, logs and restarts; `ss -ltnp` on its host) and reachable from this "
                "service (`nc -vz HOST PORT`)? Restart or fail it over; meanwhile keep this "
                "service's calls failing fast (timeouts, a circuit breaker).",
                topic="network",
            )
        return Finding(
            f"A dependency{to} answers too slowly and the calls time out: {quoted}. Requests "
            "wait for it until their timeout, which shows as latency first and then as "
            "errors; the dependency (or the network to it) is saturated or stuck.",
            0.75,
            (item.id,),
            remedy=f"Check the dependency's own latency and saturation{to} (its dashboards, "
            "slow queries, CPU, connection counts) and what changed there; keep this "
            "service's call timeout below its own request timeout, with a circuit breaker, "
            "and scale or fix the slow dependency.",
            topic="network",
        )
    return None


# A call the client itself reports as slow: "slow bulk request: 100 actions took 15271ms",
# "upstream responded slowly", "call to payments took 4.2s". A second or more.
_SLOW_CALL = re.compile(
    r"\bslow (?:\w+ ){0,2}(?:request|call|response|upstream|write|flush|batch)"
    r"|responded slowly|took[ =:]*(?:\d{4,}(?:\.\d+)? ?ms|\d+(?:\.\d+)? ?s)\b",
    re.I,
)


def slow_call_line(logs: list[EvidenceItem]) -> tuple[EvidenceItem, LogTemplate] | None:
    """The best-ranked line of a call the service logs as slow, new or surging."""
    for item, template in templates(logs):
        if not news(template) or not _failing(template) or "slow_query" in template.tags:
            continue
        if _SLOW_CALL.search(template.example):
            return item, template
    return None


def slow_calls(logs: list[EvidenceItem]) -> Finding | None:
    """Calls to a dependency that the service logs as slow, new or surging before the alert
    (not timing out yet): its throughput falls, so a consumer lags and requests queue."""
    if found := slow_call_line(logs):
        item, template = found
        return Finding(
            f"Calls to a dependency got slow before the alert: '{_clip(template.example)}' "
            f"({seen(template)}). Each call holds a worker or the consumer's loop for that "
            "long, so throughput falls: a consumer's lag grows, requests queue and slow down.",
            0.7,
            (item.id,),
            remedy="Look at the called system at that time (the store or API the line names: "
            "its latency, CPU, I/O, merges, GC, throttling, and what changed there); meanwhile "
            "scale the consumers or shrink their batches, and keep call timeouts bounded.",
            topic="slow_call",
        )
    return None


def credentials_rejected(logs: list[EvidenceItem]) -> Finding | None:
    """A dependency that rejects the service's credentials, new or surging before the alert."""
    found = _fresh_with(logs, "auth")
    if not found:
        return None
    item, template = found
    where = address(template.example)
    to = f" ({where})" if where else ""
    return Finding(
        # Not "credentials: '...'": the scrubber would take the quote for a secret's value.
        f"A dependency{to} rejects the password, token or key the service logs in with "
        f"('{_clip(template.example)}', "
        f"{seen(template)}). It was rotated, expired or revoked (or the account lost its "
        "grants) without the service being given the new one, so every call that needs it "
        "fails; the dependency itself is up.",
        0.75,
        (item.id,),
        remedy="Compare the credentials the service uses (its secret or environment as "
        "deployed) with what the dependency expects now (a rotated password, an expired token "
        "or key, a revoked grant); update the secret, reload or restart the service, and check "
        "the rotation job that should have done it.",
        topic="auth",
    )


_MIGRATION_RUN = re.compile(MIGRATION_RUN, re.I)
# A change this long before the first failing query can still be what broke it.
SCHEMA_CHANGE_LEAD_SECONDS = 3600.0


def schema_mismatch(logs: list[EvidenceItem]) -> Finding | None:
    """Queries that name a column or table the database no longer has, new or surging, and
    the DDL or migration run (in any stream) that changed the schema just before them."""
    failing = next(
        (
            (item, t, name)
            for item, t in templates(logs)
            if t.novelty in ("new", "surging") and (name := missing_object(t.example))
        ),
        None,
    )
    if failing is None:
        return None
    item, template, name = failing
    ids = [item.id]
    ddl = re.compile(rf"(?:alter|drop|rename)\b.{{0,80}}\b{re.escape(name)}\b", re.I)
    changes = [
        (i, t)
        for i, t in templates(logs)
        if template.first_seen - SCHEMA_CHANGE_LEAD_SECONDS <= t.first_seen <= template.first_seen
        and (ddl.search(t.example) or _MIGRATION_RUN.search(t.example))
    ]
    # The statement that names the object first, then the tool's run.
    changes.sort(key=lambda found: (not ddl.search(found[1].example), found[1].first_seen))
    text = (
        f"The database no longer has what the service queries ({name}): "
        f"'{_clip(template.example)}' ({seen(template)})."
    )
    if changes:
        said = "; ".join(f"'{_clip(t.example)}' at {_clock(t.first_seen)}" for _, t in changes[:2])
        ids += [i.id for i, _ in changes[:2]]
        text += (
            f" A schema migration changed it just before: {said}. The service's code and the "
            "schema no longer agree; the database itself is up and answering."
        )
        confidence = 0.85
    else:
        text += (
            " A schema change dropped or renamed it (a migration by this service's release, "
            "or by another service sharing the database), or this service's release expects "
            "a migration that has not run; the database itself is up and answering."
        )
        confidence = 0.75
    return Finding(
        text,
        confidence,
        tuple(dict.fromkeys(ids)),
        remedy=f"Find the change to {name}: the migration history (`flyway_schema_history`, "
        "`alembic_version`, `schema_migrations`) and the DDL in the database's log around the "
        "first failure. Restore it (or a compatible view) with whoever owns the migration, or "
        "release the service's side of the change; a restart will not help.",
        replaces_steps=True,
        topic="schema_mismatch",
    )


def slow_queries(logs: list[EvidenceItem], *, disk_bound: bool = False) -> Finding | None:
    """Database statements that got slow before the alert (new or surging slow-query lines;
    the occasional slow query every service logs is background). ``disk_bound``: the
    machine's disk is saturated or rebuilding, which is then why they are slow."""
    for item, template in templates(logs):
        if "slow_query" not in template.tags or "lock" in template.tags:
            continue
        if template.novelty not in ("new", "surging"):
            continue
        if disk_bound:
            # Their plans did not change: the reads under them wait on the disk.
            return Finding(
                f"Database queries got slow before the alert: '{_clip(template.example)}' "
                f"({seen(template)}). They wait for their reads on the disk named above: a "
                "symptom of it, and they recover with it.",
                0.5,
                (item.id,),
                explains=False,
                topic="slow_query",
            )
        return Finding(
            f"Database queries got slow before the alert: '{_clip(template.example)}' "
            f"({seen(template)}). Requests wait on them, which shows as latency and, past "
            "their timeouts, as errors: a missing index or a changed plan, grown or bloated "
            "tables, or a database short of CPU or I/O.",
            0.7,
            (item.id,),
            remedy="Find the slow statements and their plans (`pg_stat_statements` ordered by "
            "`mean_exec_time`, `EXPLAIN (ANALYZE, BUFFERS)` of the quoted query; MySQL's slow "
            "log); look for what changed (a migration that dropped an index, data growth, "
            "autovacuum falling behind, the database host's CPU and I/O) and fix that.",
            topic="slow_query",
        )
    return None


# What to check for each kind of own limit: (what the words name, the sentence, the remedy).
_LIMITS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"open files|E[MN]FILE|file descriptor|worker_connections", re.I),
        "file descriptors (every socket and file is one)",
        "Compare the process's open descriptors with its limit (`ls /proc/PID/fd | wc -l` "
        "against `grep 'open files' /proc/PID/limits`); find what leaks them (sockets left "
        "open, connections never closed: `ss -tanp`), and raise the limit (`LimitNOFILE=`, "
        "`ulimit -n`, nginx's `worker_rlimit_nofile` and `worker_connections`) if the load is "
        "legitimate.",
    ),
    (
        re.compile(r"thread|Rejected|pthread|queue", re.I),
        "threads (its worker or executor pool is full)",
        "Take a thread dump (`jstack PID`, `py-spy dump`, the runtime's own) to see what the "
        "busy threads wait on, usually a slow dependency or a lock; fix that, then size the "
        "pool and its queue for the load.",
    ),
    (
        re.compile(r"."),
        "workers (every worker process is busy)",
        "See what the busy workers do (slow requests, a slow dependency); raise the number of "
        "workers (`pm.max_children`, `MaxRequestWorkers`, gunicorn `--workers`) only if "
        "memory allows, and add a timeout to the slow calls.",
    ),
)


def own_limit(logs: list[EvidenceItem]) -> Finding | None:
    """The service ran into a limit of its own (descriptors, threads, workers)."""
    found = _fresh_with(logs, "resource_limit", failing=False)
    if not found:
        return None
    item, template = found
    what, remedy = next((w, r) for p, w, r in _LIMITS if p.search(template.example))
    return Finding(
        f"The service ran out of {what}: '{_clip(template.example)}' ({seen(template)}). "
        "It cannot accept or make connections or run more work while at that limit, so "
        "requests fail or queue even though its dependencies may be healthy.",
        0.75,
        (item.id,),
        remedy=remedy,
        topic="resource_limit",
    )


def store_refuses_writes(logs: list[EvidenceItem]) -> Finding | None:
    """A data store the service writes to refuses writes: full or read-only."""
    found = _fresh_with(logs, "store_full", failing=False)
    if not found:
        return None
    item, template = found
    line = template.example
    if re.search(r"maxmemory|OOM command", line, re.I):
        remedy = (
            "Compare Redis' memory with its limit (`redis-cli INFO memory`: used_memory against "
            "maxmemory) and its eviction policy (`CONFIG GET maxmemory-policy`: noeviction "
            "refuses writes); find the keys that grow without a TTL (`redis-cli --bigkeys`), "
            "set TTLs or an allkeys-lru policy, or raise maxmemory."
        )
    elif re.search(r"MISCONF|persist", line, re.I):
        remedy = (
            "Redis cannot write its RDB snapshot: check `redis-cli INFO persistence` "
            "(rdb_last_bgsave_status) and the free space and permissions of its `dir`; fix "
            "the disk, then writes resume."
        )
    else:
        remedy = (
            "Free space on the store's data volume (or add nodes), then lift the read-only "
            "block (Elasticsearch: reset `index.blocks.read_only_allow_delete`); point writes "
            "at the primary if a replica refused them."
        )
    return Finding(
        f"The data store refuses writes: '{_clip(line)}' ({seen(template)}). It is full or "
        "read-only, so every request that writes to it fails; the store, not this service's "
        "code, is the cause.",
        0.75,
        (item.id,),
        remedy=remedy,
        topic="store_full",
    )


# A schema change in a migration's or an operator's words (MySQL, PostgreSQL).
_DDL = re.compile(
    r"\b(?:ALTER TABLE|CREATE (?:UNIQUE )?INDEX(?! CONCURRENTLY)|RENAME TABLE|TRUNCATE"
    r"(?: TABLE)?|DROP (?:TABLE|INDEX|COLUMN))\b\s*(?:IF (?:NOT )?EXISTS )?`?([\w.]+)?",
    re.I,
)


def schema_change_blocks(logs: list[EvidenceItem]) -> Finding | None:
    """A schema change that began just before the service's queries began to time out: an
    ALTER waits for the table's exclusive lock (MySQL's metadata lock, PostgreSQL's ACCESS
    EXCLUSIVE) behind any open transaction, and every query on the table waits behind it."""
    found = templates(logs)
    failing = [
        t for _, t in found if news(t) and _failing(t) and ("network" in t.tags or "lock" in t.tags)
    ]
    if not failing:
        return None
    first_failure = min(t.first_seen for t in failing)
    for item, template in found:
        ddl = _DDL.search(template.example)
        if not ddl or template.novelty != "new" or template.first_seen > first_failure:
            continue
        if first_failure - template.first_seen > 1800:
            continue
        table = f" on {ddl.group(1)}" if ddl.group(1) else ""
        gap = first_failure - template.first_seen
        lead = f"{gap:.0f} s" if gap < 90 else f"{gap / 60:.0f} min"
        return Finding(
            f"A schema change{table} began {lead} before the queries started to time out: "
            f"'{_clip(template.example)}' (at {_clock(template.first_seen)}). An ALTER needs "
            "the table's exclusive lock (MySQL's metadata lock, PostgreSQL's ACCESS EXCLUSIVE "
            "lock): it waits behind any open transaction on the table (a long report or export, "
            "an idle session), and every query on the table queues behind the waiting ALTER, "
            "so reads time out while the database itself is idle.",
            0.75,
            (item.id,),
            "lock_contention",
            remedy="Find the waits (`SHOW PROCESSLIST`: 'Waiting for table metadata lock'; "
            "PostgreSQL: `pg_locks` with `pg_blocking_pids`), then end the long transaction "
            "that blocks the ALTER (information_schema.innodb_trx, pg_stat_activity) or cancel "
            "the ALTER; run schema changes with a short lock_wait_timeout/lock_timeout or an "
            "online tool (gh-ost, pt-online-schema-change).",
            replaces_steps=True,
            topic="schema_change",
        )
    return None

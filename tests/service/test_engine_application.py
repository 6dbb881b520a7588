"""Application causes: lock contention, failed jobs, deploy regressions, dependencies."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from aiops_analyzer.engines import findings, findings_dependency
from aiops_analyzer.engines.rules import RulesEngine, classify
from aiops_analyzer.evidence.logrank import LogLine, rank, tags_of
from aiops_analyzer.evidence.loki import (
    about_job,
    queue_mention_selector,
    queue_mention_selectors,
    stream_selectors,
)
from aiops_analyzer.evidence.prometheus import plan_queries
from aiops_analyzer.evidence.series import describe
from aiops_analyzer.evidence.target import scope
from aiops_analyzer.schemas import Alert, EvidenceItem

STARTS = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
LATENCY = (
    "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 1"
)
ERROR_RATIO = (
    'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05'
)


def alert(name: str, expr: str, labels: dict[str, str] | None = None) -> Alert:
    return Alert(
        fingerprint="0123456789abcdef",
        status="firing",
        labels={"alertname": name, **(labels or {})},
        starts_at=STARTS,
        generator_url=f"http://prom:9090/graph?g0.expr={quote(expr)}&g0.tab=1",
    )


def logs(
    recent: list[tuple[int, str]], baseline: tuple[str, ...] = ("INFO served GET /health",) * 20
) -> EvidenceItem:
    """Templates of ``recent`` lines (seconds before startsAt, line) over a quiet baseline."""
    start = STARTS.timestamp()
    mined = [LogLine(start - 1700 + i * 40, line, False) for i, line in enumerate(baseline)]
    mined += [LogLine(start - ago, line, True) for ago, line in recent]
    return EvidenceItem(
        id="loki-1",
        source="loki",
        kind="log_templates",
        templates=rank(mined, 900.0, 900.0),
        text="templates",
    )


def repeated(line: str, first: int, times: int = 6, every: int = 60) -> list[tuple[int, str]]:
    return [(first - i * every, line.format(i=i)) for i in range(times)]


@pytest.mark.parametrize(
    "line",
    [
        "LOG:  process 4411 still waiting for ShareLock on transaction 9182734 after 1000.1 ms",
        "ERROR:  canceling statement due to lock timeout",
        "Lock wait timeout exceeded; try restarting transaction",
        "WARNING orders: waiting for lock on orders row {i}",
        "ERROR:  deadlock detected",
    ],
)
def test_fresh_lock_waits_make_a_latency_alert_lock_contention(line: str) -> None:
    result = RulesEngine().analyze(
        alert("ApiSlow", LATENCY, {"service": "orders"}), [logs(repeated(line, 600))]
    )
    assert result.category == "lock_contention"
    top = result.probable_causes[0]
    assert "Lock contention" in top.cause and top.evidence_ids == ["loki-1"]
    assert "pg_blocking_pids" in result.remediation[0]


def test_lock_waits_as_old_as_the_baseline_are_not_the_cause() -> None:
    steady = "ERROR:  deadlock detected"
    evidence = logs([(300, steady)], baseline=(steady, "INFO served GET /health") * 10)
    result = RulesEngine().analyze(alert("ApiSlow", LATENCY, {"service": "orders"}), [evidence])
    assert result.inconclusive and result.category == "unknown"  # an old habit explains nothing
    assert not any("Lock contention" in c.cause for c in result.probable_causes)


def test_the_event_just_before_the_lock_waits_is_named_as_the_holder() -> None:
    lines = [(700, "INFO price import started for warehouse=FRA-2 rows=184220")]
    lines += repeated("Lock wait timeout exceeded; try restarting transaction", 600)
    result = RulesEngine().analyze(
        alert("Errors", ERROR_RATIO, {"service": "inventory"}), [logs(lines)]
    )
    assert result.category == "lock_contention"
    assert "price import started" in result.probable_causes[0].cause


def postgres_lock_waits() -> list[tuple[int, str]]:
    """PostgreSQL's log_lock_waits lines, in its stream, from ten minutes before startsAt."""
    return repeated(
        "postgres: LOG:  process 48{i}11 still waiting for ShareLock on transaction 91", 600
    )


def test_the_session_postgresql_says_holds_the_lock_is_named() -> None:
    waits = postgres_lock_waits()
    details = repeated(
        "postgres: DETAIL:  Process holding the lock: 47102. Wait queue: 48{i}11.", 600
    )
    result = RulesEngine().analyze(
        alert("ApiSlow", LATENCY, {"service": "orders"}), [logs(waits + details)]
    )
    assert result.category == "lock_contention"
    assert "holding the lock: process 47102" in result.probable_causes[0].cause


def test_the_table_whose_rows_are_locked_is_named() -> None:
    waits = postgres_lock_waits()
    context = repeated(
        'postgres: CONTEXT:  while updating tuple (412,{i}) in relation "inventory"', 600
    )
    result = RulesEngine().analyze(
        alert("ApiSlow", LATENCY, {"service": "orders"}), [logs(waits + context)]
    )
    assert "The waits are on rows of inventory." in result.probable_causes[0].cause


def test_requests_waiting_on_locks_hold_the_pool_they_exhaust() -> None:
    """The pool runs dry because its connections wait on row locks: lock contention names the
    error alert, not the pool."""
    waits = postgres_lock_waits()
    pool = repeated("error reserveStock failed: timeout exceeded when trying to connect {i}", 300)
    errors = alert(
        "ErrorLogs", 'sum(rate(log_errors_total{service="c"}[5m])) > 1', {"service": "c"}
    )
    result = RulesEngine().analyze(errors, [logs(waits + pool)])
    causes = " ".join(c.cause for c in result.probable_causes)
    assert "connection pool has no free connection" in causes
    assert result.category == "lock_contention"


def test_a_service_down_after_its_package_upgrade_is_the_release_not_a_stop() -> None:
    """apt restarts the unit: systemd's orderly stop, then the new version crashing in a
    restart loop. The stop was a restart; the upgrade that broke it is the cause."""
    down = alert("TargetDown", 'up{job="pricing"} == 0', {"job": "pricing", "instance": "c:9400"})
    lines = [
        (700, "ops : USER=root ; COMMAND=/usr/bin/apt-get install -y pricing-engine=5.0.1-1"),
        (690, "Stopping pricing-engine.service - Pricing engine..."),
        (690, "Stopped pricing-engine.service - Pricing engine."),
    ]
    lines += repeated("fatal: load config /etc/pricing/config.yaml: yaml: unmarshal errors", 680)
    lines += repeated(
        "pricing-engine.service: Scheduled restart job, restart counter is at {i}.", 675
    )
    result = RulesEngine().analyze(down, [logs(lines)])
    assert result.category == "deploy_regression"
    assert "apt-get install" in result.probable_causes[0].cause
    assert not any("orderly way" in c.cause for c in result.probable_causes)


def test_a_crash_loops_own_version_banner_is_no_release() -> None:
    crashed = alert("ContainerDown", "time() - container_last_seen > 60", {"name": "search-3"})
    lines = [(420, 'level=info msg="starting search" version=3.2.0')]
    lines += repeated('level=fatal msg="missing required setting SEARCH_INDEX_URL" {i}', 410)
    result = RulesEngine().analyze(crashed, [logs(lines)])
    assert result.category != "deploy_regression"


def test_new_errors_after_a_deploy_are_a_deploy_regression() -> None:
    lines = [(700, 'level=info msg="starting checkout" version=2.14.0')]
    lines += repeated('level=error msg="charge failed" err="json: cannot unmarshal {i}"', 600)
    result = RulesEngine().analyze(
        alert("CheckoutErrors", ERROR_RATIO, {"service": "checkout"}), [logs(lines)]
    )
    assert result.category == "deploy_regression"
    top = result.probable_causes[0]
    assert "2.14.0" in top.cause and "charge failed" in top.cause
    assert any("Roll back" in step for step in result.remediation)


def test_a_neighbours_release_that_then_crashes_is_the_proxys_deploy_regression() -> None:
    """nginx's 5xx: search-api restarted on a new version (its refused connections are the
    restart's gap, then prematurely closed ones) and panics on every faceted request."""
    lines = [(700, 'search-api: {"msg":"starting search-api","version":"2.14.0"}')]
    lines += repeated(
        "search-api: http: panic serving 172.20.0.2:{i}: runtime error: index out of range", 650
    )
    lines += repeated(
        "[error] 29#29: *{i} upstream prematurely closed connection while reading response "
        'header from upstream, upstream: "http://172.20.0.12:8080/api/search"',
        650,
    )
    lines += [
        (
            702,
            "[error] 29#29: *881207 connect() failed (111: Connection refused) while connecting "
            'to upstream, upstream: "http://172.20.0.12:8080/api/search"',
        )
    ]
    # search-api's periodic stats line names the version too, from the read's first line.
    lines += [
        (1800 - 60 * i, f'search-api: {{"msg":"stats","n":{i},"version":"2.14.0"}}')
        for i in range(30)
    ]
    proxy = alert("Proxy5xx", ERROR_RATIO, {"service": "edge"})
    result = RulesEngine().analyze(proxy, [logs(lines)])
    top = result.probable_causes[0]
    assert "A deploy regression" in top.cause and "starting search-api" in top.cause
    assert "panic serving" in top.cause
    # The same failures with no release of the neighbour: its outage, not a deploy.
    plain = [line for line in lines if "version" not in line[1]]
    text = " ".join(c.cause for c in RulesEngine().analyze(proxy, [logs(plain)]).probable_causes)
    assert "regression" not in text.lower()


def _machine_booted(seconds_before_start: float) -> EvidenceItem:
    """node_boot_time_seconds of the service's machine, moving to a boot at that moment."""
    boot = STARTS.timestamp() - seconds_before_start
    points = [(STARTS.timestamp() - 1800 + 60 * i, 1.7e9 if i < 10 else boot) for i in range(30)]
    return EvidenceItem(
        id="prom-9",
        source="prometheus",
        kind="host_boot_time",
        series=[describe(points, 60, labels={"instance": "stock-2:9100"})],
    )


def test_a_start_banner_just_after_the_machine_booted_is_no_release() -> None:
    """The address the service listens on went missing with the reboot: its start banner
    after the boot names the same version, and the bind failure is the cause."""
    lines = [(700, "info stock-api 4.7.2 starting listen=10.50.0.21:8080")]
    lines += repeated(
        "fatal cannot listen error=listen tcp 10.50.0.21:8080: bind: cannot assign requested "
        "address n={i}",
        690,
    )
    down = alert("TargetDown", "up == 0", {"job": "stock-api", "instance": "10.50.0.21:8080"})
    result = RulesEngine().analyze(down, [logs(lines), _machine_booted(760)])
    text = " ".join(c.cause for c in result.probable_causes)
    assert "regression" not in text.lower()
    assert "cannot listen on its address because the machine does not have it" in text
    assert "local (ephemeral) ports" not in text
    assert result.category == "network"
    # Without the boot, the same banner is a release that brought the failure.
    result = RulesEngine().analyze(down, [logs(lines), _machine_booted(5000)])
    assert "A deploy regression" in result.probable_causes[0].cause


def test_connects_failing_with_eaddrnotavail_are_ports_running_out() -> None:
    lines = repeated("dial tcp 10.0.0.5:5432: connect: cannot assign requested address {i}", 600)
    result = RulesEngine().analyze(
        alert("CheckoutErrors", ERROR_RATIO, {"service": "checkout"}), [logs(lines)]
    )
    text = " ".join(c.cause for c in result.probable_causes)
    assert "runs out of local (ephemeral) ports" in text
    assert "does not have it" not in text


def test_a_deploy_followed_by_a_database_refusing_connections_is_not_blamed() -> None:
    lines = [(700, 'level=info msg="starting checkout" version=2.14.0')]
    lines += repeated(
        'level=error msg="db" err="FATAL: sorry, too many clients already" n={i}', 600
    )
    result = RulesEngine().analyze(
        alert("CheckoutErrors", ERROR_RATIO, {"service": "checkout"}), [logs(lines)]
    )
    assert result.category == "error_rate"
    text = " ".join(c.cause for c in result.probable_causes)
    assert "too many clients" in text and "refuses or runs out of connections" in text
    assert "regression" not in text.lower()


@pytest.mark.parametrize(
    "line",
    [
        "HikariPool-1 - Connection is not available, request timed out after 30000ms. n={i}",
        "KnexTimeoutError: Knex: Timeout acquiring a connection. The pool is probably full. {i}",
        "ActiveRecord::ConnectionTimeoutError: could not obtain a connection from the pool "
        "within 5.000 seconds; all pooled connections were in use (req {i})",
        "Error: timeout exceeded when trying to connect (pg pool) id={i}",
    ],
)
def test_a_pool_with_no_free_connection_is_named_behind_latency(line: str) -> None:
    # Whatever the stack's words, the service's own pool waits: not the database's limit.
    result = RulesEngine().analyze(
        alert("CheckoutSlow", LATENCY, {"service": "checkout"}),
        [logs(repeated(line, 600))],
    )
    top = result.probable_causes[0]
    assert "connection pool has no free connection" in top.cause
    assert any("hikaricp_connections_pending" in step for step in result.remediation)
    assert "refuses" not in top.cause


def test_the_database_refusing_is_not_called_a_pool_wait() -> None:
    line = "FATAL: remaining connection slots are reserved for superuser connections {i}"
    result = RulesEngine().analyze(
        alert("CheckoutSlow", LATENCY, {"service": "checkout"}), [logs(repeated(line, 600))]
    )
    text = " ".join(c.cause for c in result.probable_causes)
    assert "refuses or runs out of connections" in text and "no free connection" not in text


@pytest.mark.parametrize(
    ("expr", "labels"),
    [
        ("time() - backup_last_success_timestamp_seconds > 90000", {"instance": "db-1:9100"}),
        # What a job leaves on success grown old, whatever the metric is called.
        ("time() - pg_dump_generated_timestamp_seconds > 90000", {"instance": "db-1:9100"}),
        (
            'node_systemd_unit_state{state="failed"} == 1',
            {"instance": "db-1:9100", "name": "pg-backup.service", "state": "failed"},
        ),
    ],
)
def test_job_alerts_read_the_hosts_journal_and_quote_the_jobs_error(
    expr: str, labels: dict[str, str]
) -> None:
    job_alert = alert("BackupProblem", expr, {"job": "node", **labels})
    assert classify(job_alert).family.category == "failed_job"
    assert about_job(job_alert)
    assert '{host="db-1"}' in stream_selectors(job_alert)
    # A systemd unit's `name` is no container: no cAdvisor queries about it.
    assert scope(job_alert) != "container"
    assert all(not q.kind.startswith("container_") for q in plan_queries(job_alert))
    lines = [
        (
            5000,
            'pg_dump: error: connection to server at "10.0.4.12" failed: FATAL:  password '
            'authentication failed for user "backup"',
        ),
        (5000, "pg-backup.service: Main process exited, code=exited, status=1/FAILURE"),
        (5000, "pg-backup.service: Failed with result 'exit-code'."),
    ]
    result = RulesEngine().analyze(job_alert, [logs(lines)])
    assert result.category == "failed_job"
    assert "password authentication failed" in result.probable_causes[0].cause


@pytest.mark.parametrize(
    "killed",
    [
        "certsync.service: start operation timed out. Terminating.",
        "timeout: sending signal TERM to command 'certsync'",
    ],
)
def test_a_job_killed_at_its_time_limit_names_what_it_waited_on(killed: str) -> None:
    unit = alert(
        "UnitFailed",
        'node_systemd_unit_state{state="failed"} == 1',
        {"job": "node", "instance": "edge-2:9100", "name": "certsync.service"},
    )
    lines = [
        (700, "Starting certsync.service - Fetch TLS material from Vault..."),
        (700, "certsync[20871]: connecting to https://vault.internal:8200 ..."),
        (610, killed),
        (610, "certsync.service: Failed with result 'timeout'."),
    ]
    result = RulesEngine().analyze(unit, [logs(lines)])
    top = result.probable_causes[0]
    assert result.category == "failed_job"
    assert "time limit" in top.cause and "connecting to https://vault.internal" in top.cause
    assert "credentials" not in result.remediation[0]


def test_a_job_that_gave_up_on_a_lock_says_something_else_held_it() -> None:
    backup = alert(
        "BackupTooOld",
        "(time() - backup_last_success_timestamp_seconds) / 3600 > 26",
        {"job": "node", "instance": "files-1:9100"},
    )
    lines = [
        (700, "Failed to create/acquire the lock /srv/borg/files-1/lock.exclusive (timeout)."),
        (700, "borg create exited with rc=2 - backup FAILED, skipping prune and compact"),
    ]
    result = RulesEngine().analyze(backup, [logs(lines)])
    assert result.category == "failed_job"
    top = result.probable_causes[0]
    assert "lock.exclusive" in top.cause and "another process held it" in top.cause
    assert "`lsof` on the lock file" in result.remediation[0]
    # A job that failed for another reason is told nothing about locks.
    other = [(700, "borg create exited with rc=2 - backup FAILED: connection closed by remote")]
    top = RulesEngine().analyze(backup, [logs(other)]).probable_causes[0]
    assert "lock" not in top.cause


def test_a_job_that_fails_with_its_own_error_is_no_timeout() -> None:
    unit = alert(
        "UnitFailed",
        'node_systemd_unit_state{state="failed"} == 1',
        {"job": "node", "instance": "edge-2:9100", "name": "certsync.service"},
    )
    lines = [
        (700, "certsync[20871]: connecting to https://vault.internal:8200 ..."),
        (690, "certsync[20871]: error: permission denied on pki/issue/edge"),
        (690, "certsync.service: Main process exited, code=exited, status=1/FAILURE"),
    ]
    top = RulesEngine().analyze(unit, [logs(lines)]).probable_causes[0]
    assert "time limit" not in top.cause and "permission denied" in top.cause


def test_a_queue_alert_names_the_stalled_consumer_and_a_rate_limit() -> None:
    lines = repeated(
        "Member consumer-billing-{i} sending LeaveGroup request to coordinator due to consumer "
        "poll timeout has expired",
        600,
        times=2,
    )
    lines += repeated("WARNING retry in 60s: 429 Client Error: Too Many Requests for url {i}", 500)
    result = RulesEngine().analyze(
        alert("LagHigh", "sum(kafka_consumergroup_lag) > 5000", {"service": "billing"}),
        [logs(lines)],
    )
    assert result.category == "queue_lag"
    text = " ".join(c.cause for c in result.probable_causes)
    assert "LeaveGroup" in text and "Too Many Requests" in text


def test_a_consumer_evicted_after_its_calls_got_slow_is_told_why() -> None:
    """Bulk writes that outlast the poll interval make the group evict its consumer: the
    eviction is quoted with the slow calls that came first."""
    leave = (
        "Member consumer-indexer-{i} sending LeaveGroup request to coordinator due to consumer "
        "poll timeout has expired"
    )
    slow = "WARN BulkWriter: bulk to opensearch took 4{i}000 ms (100 actions, 0 failed)"
    lag = alert("LagHigh", "sum(kafka_consumergroup_lag) > 5000", {"service": "indexer"})
    result = RulesEngine().analyze(
        lag, [logs(repeated(leave, 300, times=2) + repeated(slow, 900, times=6))]
    )
    stalled = next(c for c in result.probable_causes if "rebalance loop" in c.cause)
    assert "its calls got slow first: 'WARN BulkWriter: bulk to opensearch took" in stalled.cause
    # Calls that got slow only after the eviction did not cause it.
    late = repeated(leave, 900, times=2) + repeated(slow, 300, times=6)
    stalled = next(
        c
        for c in RulesEngine().analyze(lag, [logs(late)]).probable_causes
        if "rebalance loop" in c.cause
    )
    assert "got slow first" not in stalled.cause


def test_a_queue_without_consumer_names_the_service_that_consumes_it() -> None:
    lines = repeated("rabbitmq: missed heartbeats from client {i}, timeout: 60s", 500, times=1)
    lines += [(200, 'pdf-worker: {"level":"info","msg":"consuming","queue":"invoice.render"}')]
    queue = {"queue": "invoice.render", "instance": "rabbitmq:15692", "job": "rabbitmq"}
    result = RulesEngine().analyze(
        alert("RabbitmqNoConsumer", "rabbitmq_queue_consumers == 0", queue), [logs(lines)]
    )
    stalled = next(c for c in result.probable_causes if "stopped consuming" in c.cause)
    assert "the consumer is pdf-worker ('pdf-worker:" in stalled.cause
    assert (
        queue_mention_selector(alert("RabbitmqNoConsumer", "rabbitmq_queue_consumers == 0", queue))
        == '{service=~".+"} |~ "(?i)invoice\\\\.render"'
    )


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        ("FATAL:  sorry, too many clients already", "database"),
        ("HikariPool-1 - Connection is not available, request timed out after 30000ms", "database"),
        ("TimeoutError: ResourceRequest timed out", "database"),
        (
            "HikariPool-1 - Connection is not available, unable to acquire JDBC Connection",
            "database",
        ),
        ('10.0.0.1 - - "POST /v1/send HTTP/1.1" 429 12 "-"', "rate_limit"),
        ("rsync error: error in file IO (code 11) at main.c(791) [Receiver=3.2.7]", "job"),
        ("backup.service: Main process exited, code=exited, status=2/INVALIDARGUMENT", "job"),
        ("Revoking previously assigned partitions; rebalancing", "consumer"),
        ("smtp: 421 4.7.0 Try again later, closing connection (throttled)", "rate_limit"),
        ("451-4.7.1 Too many messages from 10.0.3.9, please slow down", "rate_limit"),
        ("botocore.errorfactory.ThrottlingException: Rate exceeded", "rate_limit"),
        ("FATAL:  terminating connection due to idle-in-transaction timeout", "lock"),
        # What a skewed clock breaks.
        (
            "An error occurred while attempting to decode the Jwt: Jwt used before 2026-12-03",
            "clock",
        ),
        ("<Code>RequestTimeTooSkewed</Code>", "clock"),
        # A resolver's upstream timing out (CoreDNS forwarding to port 53) is DNS.
        (
            "[ERROR] plugin/errors: 2 example.com. A: "
            "read udp 10.0.5.7:4107->10.0.0.2:53: i/o timeout",
            "dns",
        ),
    ],
)
def test_application_tags(line: str, tag: str) -> None:
    assert tag in tags_of(line)


@pytest.mark.parametrize(
    ("line", "stops"),
    [
        ("Stopping nginx.service - A high performance web server...", True),
        ("Stopped prometheus-node-exporter.service - Prometheus exporter.", True),
        (
            "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
            "COMMAND=/usr/bin/systemctl stop prometheus-node-exporter",
            True,
        ),
        ("bob : COMMAND=/usr/bin/docker stop shop_api_1", True),
        ("kubectl scale deploy/api --replicas=0", True),
        # A user's session manager ends with every logout; a oneshot unit finishes every run.
        ("Stopping user@1000.service - User Manager for UID 1000...", False),
        ("apt-daily.service: Deactivated successfully.", False),
        ("Starting apt-daily.service - Daily apt download activities...", False),
    ],
)
def test_orderly_stops_and_the_commands_that_make_them(line: str, stops: bool) -> None:
    assert ("shutdown" in tags_of(line)) is stops
    assert "deploy" not in tags_of(line)  # scaling a deployment to zero ships nothing


@pytest.mark.parametrize(
    "line",
    [
        "throttle_ms=0 sent=42",
        "SMTP 250 2.0.0 OK queued as 4Zx1",
        "idle workers: 4",
        "HikariPool-1 - Pool stats (total=10, active=3, idle=7, waiting=0)",
        "HikariPool-1 - Start completed.",
    ],
)
def test_ordinary_lines_are_no_throttling_nor_lock(line: str) -> None:
    assert not {"rate_limit", "lock", "database"} & set(tags_of(line))


def test_exit_code_137_is_an_oom_kill_not_a_failed_job() -> None:
    assert "job" not in tags_of("worker exited with exit code 137 (killed)")


@pytest.mark.parametrize(
    "start",
    [
        '{"level":"info","msg":"starting server","version":"2.3.1","commit":"ab12"}',
        "2026-11-27 10:00:01 INFO orders-api 1.4.2 starting on port 8000",
        "Starting api v2.3.1 (build 7781)",
    ],
)
def test_start_up_lines_that_name_a_version_are_deploys(start: str) -> None:
    lines = [(700, start)]
    lines += repeated('{{"level":"error","msg":"render failed","err":"nil map {i}"}}', 600)
    result = RulesEngine().analyze(
        alert("Errors", ERROR_RATIO, {"service": "orders"}), [logs(lines)]
    )
    assert result.category == "deploy_regression"


def test_a_version_on_every_line_is_no_deploy() -> None:
    line = '{"level":"info","msg":"served","path":"/api","version":"2.3.1"}'
    evidence = logs(
        [(300, line), (200, line), (100, line)],
        baseline=(line,) * 20,
    )
    result = RulesEngine().analyze(alert("Errors", ERROR_RATIO, {"service": "x"}), [evidence])
    assert result.inconclusive and result.category == "unknown"  # routine lines explain nothing
    assert not any("version or deploy started" in c.cause for c in result.probable_causes)


def expression_item(values: list[float]) -> EvidenceItem:
    """The alert's own series, one point a minute, the last five minutes after startsAt."""
    end = STARTS.timestamp() + 300
    points = [(end - (len(values) - 1 - i) * 60, v) for i, v in enumerate(values)]
    return EvidenceItem(
        id="prom-1",
        source="prometheus",
        kind="alert_expression",
        series=[describe(points, 60, labels={"service": "orders"}, alert_labels={})],
        text="alert expression",
        window_start=end - 1800,
        window_end=end,
    )


def test_a_step_up_after_a_deploy_without_new_errors_is_a_deploy_regression() -> None:
    latency = expression_item([0.21, 0.2, 0.22, 0.19] * 5 + [1.6, 1.5, 1.55, 1.62, 1.58] * 2)
    deploy = logs([(400, "INFO orders-api 1.4.2 starting on port 8000")])
    result = RulesEngine().analyze(
        alert("ApiSlow", LATENCY, {"service": "orders"}), [latency, deploy]
    )
    assert result.category == "deploy_regression"
    top = result.probable_causes[0]
    assert "1.4.2" in top.cause and "from 0.2" in top.cause
    assert set(top.evidence_ids) == {"prom-1", "loki-1"}


def test_a_deploy_after_the_step_is_not_its_cause() -> None:
    latency = expression_item([0.21, 0.2, 0.22, 0.19] * 5 + [1.6, 1.5, 1.55, 1.62, 1.58] * 2)
    deploy = logs([(60, "INFO orders-api 1.4.2 starting on port 8000")])
    result = RulesEngine().analyze(
        alert("ApiSlow", LATENCY, {"service": "orders"}), [latency, deploy]
    )
    assert result.category == "latency"


@pytest.mark.parametrize(
    "line",
    [
        "WARN BulkIndexer: slow bulk request: 100 actions took 15{i}71ms (es took=14271ms)",
        "WARN client: call to payments took 4.{i}s",
        "WARN upstream responded slowly (3{i}12 ms)",
    ],
)
def test_calls_the_consumer_logs_as_slow_are_named_behind_queue_lag(line: str) -> None:
    lag = alert("LagHigh", "sum(kafka_consumergroup_lag) > 5000", {"consumergroup": "indexer"})
    result = RulesEngine().analyze(lag, [logs(repeated(line, 600))])
    assert result.category == "queue_lag" and not result.inconclusive
    top = result.probable_causes[0]
    assert top.cause.startswith("Calls to a dependency got slow") and top.evidence_ids == ["loki-1"]
    # As slow all along (the baseline has it too): nothing new to blame.
    steady = logs([(300, line.format(i=1))], baseline=(line.format(i=2), "INFO ok") * 10)
    assert not any(
        "got slow" in c.cause for c in RulesEngine().analyze(lag, [steady]).probable_causes
    )


def test_a_consumer_whose_regular_line_went_quiet_is_named_behind_queue_lag() -> None:
    start = STARTS.timestamp()
    commit = "INFO committed offsets for 3 partitions batch={i}"
    mined = [LogLine(start - 1700 + i * 60, commit.format(i=i), False) for i in range(14)]
    mined += [LogLine(start - 840 + i * 60, commit.format(i=i), True) for i in range(3)]
    mined += [LogLine(start - 300 + i * 60, f"INFO heap used {300 + i} MB", True) for i in range(8)]
    item = EvidenceItem(
        id="loki-1",
        source="loki",
        kind="log_templates",
        templates=rank(mined, 900.0, 900.0),
        text="templates",
        window_start=start - 900,
        window_end=start + 300,
    )
    result = RulesEngine().analyze(
        alert("LagHigh", "sum(kafka_consumergroup_lag) > 5000", {"service": "billing"}), [item]
    )
    assert result.category == "queue_lag"
    top = result.probable_causes[0]
    assert "stopped consuming" in top.cause and "committed offsets" in top.cause
    assert "last logged at" in top.cause


@pytest.mark.parametrize(
    "error",
    [
        "2026/11/28 00:59:01 [error] 31#31: *{i} upstream timed out (110: Connection timed out) "
        'while reading response header from upstream, upstream: "http://10.0.3.7:8080/api"',
        "2026/11/28 00:59:01 [error] 31#31: *{i} connect() failed (111: Connection refused) "
        'while connecting to upstream, upstream: "http://10.0.3.7:8080/api"',
    ],
)
def test_a_deploy_followed_by_upstream_failures_is_not_blamed(error: str) -> None:
    lines = [(700, "2026/11/28 00:48:20 [notice] 1#1: nginx 1.25.3 starting")]
    lines += repeated(error, 600)
    result = RulesEngine().analyze(
        alert("Proxy5xx", ERROR_RATIO, {"service": "edge"}), [logs(lines)]
    )
    assert result.category == "error_rate"
    text = " ".join(c.cause for c in result.probable_causes)
    assert "upstream" in text and "regression" not in text.lower()


@pytest.mark.parametrize(
    ("expr", "labels", "selector"),
    [
        # A Loki ruler alert on Alloy's streams: `container` is the Docker name, cAdvisor's `name`.
        (
            'sum by (container) (count_over_time({container="shop-orders-1"} |= "ERROR" [5m]))'
            " > 10",
            {"container": "shop-orders-1"},
            'name="shop-orders-1"',
        ),
        # cAdvisor's own series keep their label, as on Kubernetes next to a pod.
        (
            'container_memory_working_set_bytes{container="api"} > 1e9',
            {"container": "api"},
            'container="api"',
        ),
        (
            "rate(http_requests_total[5m]) > 10",
            {"container": "api", "pod": "api-7d9f", "namespace": "shop"},
            'container="api"',
        ),
    ],
)
def test_container_queries_use_the_label_cadvisor_has(
    expr: str, labels: dict[str, str], selector: str
) -> None:
    container_queries = [
        q for q in plan_queries(alert("X", expr, labels)) if q.kind.startswith("container_")
    ]
    assert container_queries
    assert all(selector in q.promql for q in container_queries), container_queries


def image_item(started_ago: dict[str, tuple[int, int]]) -> EvidenceItem:
    """container_start_time_seconds by image: image -> (first point, last point) in seconds
    before startsAt; each series' value is its container's start (its first point)."""
    start = STARTS.timestamp()
    series = []
    for image, (first, last) in started_ago.items():
        points = [(start - ago, start - first) for ago in range(first, last - 1, -60)]
        labels = {"name": "shop-orders-1", "image": image}
        series.append(describe(points, 60, labels=labels, alert_labels={}))
    return EvidenceItem(
        id="prom-9", source="prometheus", kind="container_image", series=series, text="images"
    )


def test_a_new_image_followed_by_new_errors_is_a_deploy_regression() -> None:
    images = image_item(
        {"registry.local/orders:2.4.0": (1800, 660), "registry.local/orders:2.5.0": (600, 0)}
    )
    errors = logs(repeated('ERROR create order failed: KeyError: "currency"', 540))
    result = RulesEngine().analyze(
        alert("OrdersErrors", ERROR_RATIO, {"container": "shop-orders-1"}), [images, errors]
    )
    assert result.category == "deploy_regression"
    top = result.probable_causes[0]
    assert "orders:2.4.0" in top.cause and "orders:2.5.0" in top.cause and "KeyError" in top.cause
    assert set(top.evidence_ids) == {"prom-9", "loki-1"}


NGINX_TLS_VERSION = (
    "[error] 29#29: *{i} SSL_do_handshake() failed (SSL: error:0A000102:SSL routines::"
    "unsupported protocol) while SSL handshaking to upstream, client: 10.30.3.9, server: "
    'portal.example, request: "GET /billing/api/invoices HTTP/1.1", upstream: '
    '"https://10.30.8.21:443/billing/api/invoices", host: "portal.example", referrer: '
    '"https://portal.example/"'
)


def test_a_tls_version_mismatch_after_a_new_image_is_the_new_versions_not_the_peers() -> None:
    """Handshakes that share no TLS version began with a new image: its client defaults
    changed (OpenSSL 3 refuses the legacy upstream), so the deploy is the cause. Without a
    new image the same lines are a protocol-version mismatch toward the named upstream."""
    images = image_item({"nginx:1.22.1": (1800, 660), "nginx:1.27.3": (600, 0)})
    handshakes = logs(repeated(NGINX_TLS_VERSION, 540))
    upgraded = RulesEngine().analyze(
        alert("NginxHigh5xxRate", ERROR_RATIO, {"container": "shop-orders-1"}),
        [images, handshakes],
    )
    assert upgraded.category == "deploy_regression"
    assert "nginx:1.22.1 to nginx:1.27.3" in upgraded.probable_causes[0].cause
    same_image = image_item({"nginx:1.27.3": (1800, 0)})
    unchanged = RulesEngine().analyze(
        alert("NginxHigh5xxRate", ERROR_RATIO, {"container": "shop-orders-1"}),
        [same_image, logs(repeated(NGINX_TLS_VERSION, 540))],
    )
    assert unchanged.category == "tls"
    top = unchanged.probable_causes[0].cause
    assert "protocol version, not on a certificate" in top and "toward 10.30.8.21:443" in top


def test_a_peer_refusing_connections_after_a_new_image_is_still_the_peers() -> None:
    images = image_item({"nginx:1.22.1": (1800, 660), "nginx:1.27.3": (600, 0)})
    refused = "connect() failed (111: Connection refused) while connecting to upstream {i}"
    result = RulesEngine().analyze(
        alert("NginxHigh5xxRate", ERROR_RATIO, {"container": "shop-orders-1"}),
        [images, logs(repeated(refused, 540))],
    )
    assert result.category != "deploy_regression"


def test_one_image_all_along_is_no_deploy() -> None:
    images = image_item({"registry.local/orders:2.4.0": (1800, 0)})
    errors = logs(repeated('ERROR create order failed: KeyError: "currency"', 540))
    result = RulesEngine().analyze(
        alert("OrdersErrors", ERROR_RATIO, {"container": "shop-orders-1"}), [images, errors]
    )
    assert result.category != "deploy_regression"
    assert not any("redeployed" in c.cause for c in result.probable_causes)


def test_errors_around_the_alert_are_the_new_ones_not_the_baselines_background() -> None:
    """An AppArmor denial logged before the alert too (once, too rare to call periodic) is
    not the error: the quoted errors are the ones that are new before the alert."""
    denial = 'kernel: audit: apparmor="DENIED" operation="open" profile="snap.x" name="/proc/1"'
    new_error = "ERROR invoice {i} could not be rendered: template has no field total"
    evidence = logs(
        [(800, denial), *repeated(new_error, 500)],
        baseline=(denial,) + ("INFO served GET /health",) * 12,
    )
    found = findings.error_messages([evidence])
    assert found is not None
    assert "could not be rendered" in found.cause and "apparmor" not in found.cause


def test_errors_only_as_old_as_the_baseline_are_not_quoted_as_the_error() -> None:
    steady = "ERROR token refresh failed for tenant {i}, retrying"
    evidence = logs(
        repeated(steady, 600, times=2, every=300),
        baseline=tuple(steady.format(i=i) for i in range(6)) + ("INFO served GET /health",) * 6,
    )
    assert findings.error_messages([evidence]) is None
    assert findings.error_messages([evidence], slow_burn=True) is not None


@pytest.mark.parametrize(
    ("line", "where", "kind"),
    [
        (
            "2026/12/02 11:00:00 [error] 29#29: *881 connect() failed (111: Connection refused) "
            'while connecting to upstream, upstream: "http://172.18.0.9:8080/api/cart"',
            "172.18.0.9:8080",
            "refuses",
        ),
        (
            "2026/12/02 11:00:00 [error] 29#29: *881 upstream timed out (110: Connection timed "
            'out) while reading response header from upstream, upstream: "http://cart:8080/"',
            "cart:8080",
            "too slowly",
        ),
        (
            'level=error caller=main.go:71 msg="reserve failed" err="rpc error: code = '
            'Unavailable desc = dial tcp 10.0.4.12:50051: connect: connection refused"',
            "10.0.4.12:50051",
            "refuses",
        ),
        (
            '{{"level":50,"msg":"fx lookup failed","err":{{"message":"network timeout at: '
            'http://fx-rates:8080/v1/rates"}}}}',
            "fx-rates:8080",
            "too slowly",
        ),
        (
            "ERROR c.a.Client: call failed: java.net.SocketTimeoutException: Read timed out",
            "",
            "too slowly",
        ),
        ("Error: connect ECONNREFUSED 10.1.0.7:6379", "10.1.0.7:6379", "refuses"),
    ],
)
def test_a_dependency_that_refuses_or_is_slow_is_named_from_the_clients_words(
    line: str, where: str, kind: str
) -> None:
    result = RulesEngine().analyze(
        alert("ApiErrors", ERROR_RATIO, {"service": "shop"}), [logs(repeated(line, 600))]
    )
    assert result.category == "error_rate"
    top = result.probable_causes[0]
    assert top.evidence_ids == ["loki-1"] and kind in top.cause
    assert f"({where})" in top.cause if where else "dependency answers" in top.cause


def test_a_dependency_error_as_old_as_the_baseline_names_no_dependency() -> None:
    line = "ERROR call to geo:9000 failed: connection refused"
    evidence = logs([(300, line)], baseline=(line, "INFO served GET /health") * 10)
    result = RulesEngine().analyze(alert("ApiErrors", ERROR_RATIO, {"service": "s"}), [evidence])
    assert not any("refuses or drops" in c.cause for c in result.probable_causes)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("java.io.IOException: Too many open files", "file descriptors"),
        ("2026/12/02 11:00:00 [alert] 12#12: 1024 worker_connections are not enough", "file"),
        ("Error: EMFILE: too many open files, open '/app/tpl/x.html'", "file descriptors"),
        ("ERROR RejectedExecutionException: Task rejected from ThreadPoolExecutor", "threads"),
        ("[2026-12-02 11:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:18)", "workers"),
        ("WARNING: [pool www] server reached pm.max_children setting (20)", "workers"),
    ],
)
def test_a_limit_of_the_service_itself_is_read_with_its_own_remedy(line: str, says: str) -> None:
    result = RulesEngine().analyze(
        alert("ApiErrors", ERROR_RATIO, {"service": "s"}), [logs(repeated(line, 600))]
    )
    top = result.probable_causes[0]
    assert top.cause.startswith("The service ran out of") and says in top.cause


@pytest.mark.parametrize(
    ("line", "remedy"),
    [
        (
            "redis.exceptions.OutOfMemoryError: OOM command not allowed when used memory > "
            "'maxmemory'.",
            "maxmemory-policy",
        ),
        (
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
            "persist to disk",
            "rdb_last_bgsave_status",
        ),
        (
            "FORBIDDEN/12/index read-only / allow delete (api) blocked by: "
            "[read-only-allow-delete]",
            "read_only_allow_delete",
        ),
    ],
)
def test_a_store_that_refuses_writes_is_not_an_oom_kill(line: str, remedy: str) -> None:
    result = RulesEngine().analyze(
        alert("ApiErrors", ERROR_RATIO, {"service": "s"}), [logs(repeated(line, 600))]
    )
    assert result.category == "error_rate"
    assert result.probable_causes[0].cause.startswith("The data store refuses writes")
    assert remedy in result.remediation[0]


@pytest.mark.parametrize(
    "expr",
    [
        'sum(rate(http_server_requests_seconds_count{outcome="SERVER_ERROR"}[5m])) '
        "/ sum(rate(http_server_requests_seconds_count[5m])) > 0.05",
        'sum(rate(grpc_server_handled_total{grpc_code!="OK"}[5m])) '
        "/ sum(rate(grpc_server_handled_total[5m])) > 0.01",
        'sum(rate(grpc_server_handled_total{grpc_code=~"Unavailable|Internal"}[5m])) > 1',
    ],
)
def test_error_ratios_in_micrometer_and_grpc_terms_are_error_rates(expr: str) -> None:
    assert classify(alert("ShopSLOBurn", expr)).family.category == "error_rate"


def test_a_line_a_finding_explains_is_not_quoted_again_as_errors_around_the_alert() -> None:
    line = "ERROR in app: redis.exceptions.ResponseError: OOM command not allowed > 'maxmemory'"
    result = RulesEngine().analyze(
        alert("ApiErrors", ERROR_RATIO, {"service": "s"}), [logs(repeated(line, 600))]
    )
    said = [c.cause for c in result.probable_causes if "maxmemory" in c.cause]
    assert len(said) == 1 and said[0].startswith("The data store refuses writes")


@pytest.mark.parametrize(
    "line",
    [
        'level=warn msg="slow query" query=list_orders took={i}12ms',
        "2026-12-02 15:40:00.000 UTC [88] LOG:  duration: 5{i}23.456 ms  statement: SELECT 1",
        "# Query_time: 12.{i}  Lock_time: 0.000 Rows_sent: 1  Rows_examined: 9000000",
    ],
)
def test_slow_queries_that_surge_before_a_latency_alert_are_named(line: str) -> None:
    old = line.format(i=9)
    evidence = logs(repeated(line, 600, times=8), baseline=(old,) + ("INFO GET /health",) * 12)
    result = RulesEngine().analyze(alert("ApiSlow", LATENCY, {"service": "s"}), [evidence])
    top = result.probable_causes[0]
    assert top.cause.startswith("Database queries got slow") and "surging" in top.cause
    assert "EXPLAIN" in result.remediation[0]


def test_a_slow_query_as_common_as_before_is_background() -> None:
    line = 'level=warn msg="slow query" query=list_orders took=812ms'
    evidence = logs([(300, line)], baseline=(line, "INFO GET /health", "INFO GET /health") * 4)
    result = RulesEngine().analyze(alert("ApiSlow", LATENCY, {"service": "s"}), [evidence])
    assert not any("queries got slow" in c.cause for c in result.probable_causes)


@pytest.mark.parametrize(
    "line",
    [
        'level=error msg="db connect" err="server error (FATAL: password authentication failed '
        'for user \\"app\\" (SQLSTATE 28P01))"',
        "ERROR 1045 (28000): Access denied for user 'shop'@'10.0.3.7' (using password: YES)",
        "botocore.exceptions.ClientError: An error occurred (ExpiredToken) when calling the "
        "PutObject operation: The security token included in the request is expired",
        "redis.exceptions.AuthenticationError: WRONGPASS invalid username-password pair",
        "rpc error: code = Unauthenticated desc = invalid token",
    ],
)
def test_credentials_a_dependency_rejects_are_named(line: str) -> None:
    result = RulesEngine().analyze(
        alert("ApiErrors", ERROR_RATIO, {"service": "s"}), [logs(repeated(line, 600))]
    )
    top = result.probable_causes[0]
    assert "rejects the password, token or key" in top.cause
    assert "rotation" in result.remediation[0]


def test_scanners_failing_ssh_logins_are_no_rejected_credentials() -> None:
    line = "pam_unix(sshd:auth): authentication failure; logname= uid=0 rhost=203.0.113.{i}"
    assert "auth" not in tags_of(line.format(i=7))


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('connection to server at "10.0.5.4", port 5432 failed: FATAL: password', "10.0.5.4:5432"),
        ('connection to server at "db" (10.0.5.4), port 6432 failed', "db:6432"),
        (
            'level=error caller=main.go:71 err="dial tcp 10.0.4.12:50051: refused"',
            "10.0.4.12:50051",
        ),
        ("Error: connect ECONNREFUSED redis-cache:6379", "redis-cache:6379"),
        ('upstream: "http://cart:8080/api", host: "shop.local"', "cart:8080"),
        # Go's net errors name the local end first: the dependency is the remote one.
        ("read tcp 10.0.5.7:41070->10.0.0.9:5432: read: connection reset by peer", "10.0.0.9:5432"),
    ],
)
def test_the_dependencys_address_is_read_from_the_clients_line(line: str, where: str) -> None:
    assert findings_dependency.address(line) == where


def test_a_database_refusing_a_password_is_not_out_of_connections() -> None:
    line = (
        "psycopg2.OperationalError: could not connect to server: FATAL:  password "
        'authentication failed for user "app" {i}'
    )
    result = RulesEngine().analyze(
        alert("ApiErrors", ERROR_RATIO, {"service": "s"}), [logs(repeated(line, 600))]
    )
    text = " ".join(c.cause for c in result.probable_causes)
    assert "rejects the password, token or key" in text
    assert "runs out of connections" not in text


def test_an_eviction_loop_older_than_the_window_is_named_behind_a_rising_backlog() -> None:
    """Consumers evicted from their group every few minutes since before the baseline ended:
    not new, but still repeating while the lag climbs, so it is the backlog's cause."""
    leave = (
        "Member projector-{i} sending LeaveGroup request to coordinator due to consumer poll "
        "timeout has expired"
    )
    before = tuple(leave.format(i=i) for i in range(12)) + ("INFO served GET /health",) * 8
    lag = alert("LagHigh", "sum(kafka_consumergroup_lag) by (consumergroup) > 20000")
    rising = expression_item([20000 + 150 * i for i in range(30)])
    result = RulesEngine().analyze(lag, [rising, logs(repeated(leave, 700, times=12), before)])
    assert result.category == "queue_lag" and not result.inconclusive
    assert any("LeaveGroup" in c.cause for c in result.probable_causes)
    # The same lines under a backlog that does not grow explain nothing new.
    flat = RulesEngine().analyze(
        lag, [expression_item([20500.0] * 30), logs(repeated(leave, 700, times=12), before)]
    )
    assert not any("stopped consuming" in c.cause for c in flat.probable_causes)


def test_a_job_that_cannot_find_its_binary_names_what_removed_it() -> None:
    unit = alert(
        "HostSystemdServiceCrashed",
        'node_systemd_unit_state{state="failed"} == 1',
        {"job": "node", "instance": "fin-batch-1:9100", "name": "invoice-export.service"},
    )
    binary = "/opt/billing/releases/2026.10.2/bin/invoice-export"
    lines = [
        (900, "prune-releases: removing /opt/billing/releases/2026.10.1 (50 days old)"),
        (899, "prune-releases: removing /opt/billing/releases/2026.10.2 (36 days old)"),
        (120, f"invoice-export.service: Failed at step EXEC spawning {binary}: No such file"),
        (120, "invoice-export.service: Failed with result 'exit-code'."),
    ]
    top = RulesEngine().analyze(unit, [logs(lines)]).probable_causes[0]
    assert f"{binary} no longer exists" in top.cause
    assert "removing /opt/billing/releases/2026.10.2" in top.cause  # not its sibling
    # Nothing removed it: nothing is claimed.
    alone = [(120, f"invoice-export.service: Failed at step EXEC spawning {binary}: No such file")]
    assert (
        "no longer exists"
        not in RulesEngine().analyze(unit, [logs(alone)]).probable_causes[0].cause
    )


def test_a_kafka_group_evicting_its_consumers_again_and_again_is_a_rebalance_loop() -> None:
    group = {"consumergroup": "shipping-labels", "topic": "shipments.created"}
    a = alert("GroupLag", "sum by (consumergroup, topic) (kafka_consumergroup_lag) > 30000", group)
    # Kubernetes streams carry no `service` label: the group's mentions are read there too.
    mentions = queue_mention_selectors(a)
    assert [m.split(" |~ ")[0] for m in mentions] == ['{service=~".+"}', '{namespace=~".+"}']
    assert all("shipping-labels|shipments" in m for m in mentions)
    evicted = (
        "WARN [heartbeat | shipping-labels] ConsumerCoordinator: [groupId=shipping-labels] "
        "consumer poll timeout has expired. This means the time between subsequent calls to "
        "poll() was longer than the configured max.poll.interval.ms"
    )
    rejoin = "INFO ConsumerCoordinator: [groupId=shipping-labels] (Re-)joining group"
    lines = [(600 - 380 * i, evicted) for i in range(2)] + [
        (590 - 380 * i, rejoin) for i in range(2)
    ]
    result = RulesEngine().analyze(a, [logs(lines)])
    top = result.probable_causes[0]
    assert "rebalance loop" in top.cause and "max.poll.interval.ms" in top.cause
    assert result.remediation[0].startswith("Make one poll's work fit the interval")
    assert not any("add workers" in step for step in result.remediation)
    # A consumer that stopped (no eviction) is told as stopped.
    stopped = [(300, "WARN consumer stopped: shutting down")]
    result = RulesEngine().analyze(a, [logs(stopped)])
    assert any("stopped consuming" in c.cause for c in result.probable_causes)


def test_a_migrations_alter_just_before_queries_time_out_is_lock_contention() -> None:
    api = {"namespace": "shop", "service": "catalog-api"}
    a = alert("CatalogSlow", "histogram_quantile(0.99, rate(http_duration_bucket[5m])) > 2", api)
    alter = "migrate: executing: ALTER TABLE products ADD COLUMN discount_pct DECIMAL(5,2) NULL"
    timeout = "error query failed query=SELECT id FROM products err=context deadline exceeded"
    lines = [(430, alter)] + [(400 - 10 * i, timeout) for i in range(20)]
    result = RulesEngine().analyze(a, [logs(lines)])
    assert result.category == "lock_contention"
    top = result.probable_causes[0]
    assert "A schema change on products began 30 s before" in top.cause
    assert "metadata lock" in top.cause
    assert result.remediation[0].startswith("Find the waits (`SHOW PROCESSLIST`")
    # An ALTER after the timeouts began did not cause them.
    late = [(100, alter)] + [(400 - 10 * i, timeout) for i in range(20)]
    result = RulesEngine().analyze(a, [logs(late)])
    assert not any("schema change" in c.cause for c in result.probable_causes)


def test_one_message_requeued_for_hours_is_a_poison_message_however_old_the_loop() -> None:
    queue = {"job": "rabbitmq", "queue": "orders.fulfilment"}
    a = alert("QueueBacklog", "rabbitmq_queue_messages_ready > 2000", queue)
    loop = (
        "ERROR worker: failed to process message_id=ord-5f2c delivery_tag={i} "
        "redelivered=True: KeyError: 'shipping_address'"
    )
    # The loop began long before the backlog crossed the threshold: as often then as now.
    lines = repeated(loop, 880, times=40, every=20)
    result = RulesEngine().analyze(
        a, [logs(lines, baseline=tuple(loop.format(i=i) for i in range(40)))]
    )
    top = result.probable_causes[0]
    assert top.cause.startswith("One record blocks the consumer") and "KeyError" in top.cause
    assert result.category == "queue_lag"
    # More consumers would fail on it too: the generic "add workers" step is left out.
    assert not any("add workers" in step for step in result.remediation)
    assert any("dead-letter exchange" in step for step in result.remediation)

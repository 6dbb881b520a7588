"""Reading one log entry whatever its format: level, readable text, exception causes."""

from __future__ import annotations

import pytest
from aiops_analyzer.evidence.logline import condense, is_frame, level_of, shorten
from aiops_analyzer.evidence.logrank import LogLine, rank, tags_of


@pytest.mark.parametrize(
    ("line", "level"),
    [
        # Spring Boot, Python logging, log4j: the level after the time stamp and pid.
        ("2026-12-01 09:30:00.000 ERROR 1 --- [nio-8080-exec-3] o.a.c.c.C : failed", "error"),
        ("2026-12-01 09:30:00,123 WARNING billing.sync: retrying", "warn"),
        ("2026-12-01 09:30:00,123 [main] ERROR com.acme.Job - boom", "error"),
        # PostgreSQL and MySQL.
        ("2026-12-01 09:30:00.000 UTC [58] FATAL:  sorry, too many clients already", "fatal"),
        ("2026-12-01 09:30:00.000 UTC [58] LOG:  checkpoint complete", "info"),
        ("2026-12-01T09:30:00.123456Z 12 [Warning] [MY-010055] [Server] IP address", "warn"),
        # nginx, Rails, glog, uvicorn, Go's panic.
        ("2026/12/01 09:30:00 [crit] 31#31: *1 connect() failed", "crit"),
        ("E, [2026-12-01T09:30:00.123 #1] ERROR -- : PG::ConnectionBad", "error"),
        ("E1201 09:30:00.123456       1 reflector.go:138] failed to list", "error"),
        ("ERROR:    Exception in ASGI application", "error"),
        ("panic: runtime error: invalid memory address", "fatal"),
        # JSON lines: level, severity, lvl, ECS's nested log.level, pino's numbers.
        ('{"level":"error","msg":"charge failed"}', "error"),
        ('{"severity":"WARNING","message":"slow"}', "warn"),
        ('{"lvl":"eror","msg":"x"}', "error"),
        ('{"log":{"level":"error"},"message":"x"}', "error"),
        ('{"level":50,"time":1,"msg":"db down"}', "error"),
        ('{"level":30,"time":1,"msg":"ok"}', "info"),
        # logfmt.
        ('ts=2026-12-01T09:30:00Z level=warn msg="queue slow"', "warn"),
        ('t=2026-12-01T09:30:00Z lvl=crit msg="x"', "crit"),
        # Words that lead a line without being its level.
        ("Alert sent to on-call for ledger", ""),
        ("Log rotation done", ""),
        ("GET /healthz 200 3ms", ""),
    ],
)
def test_levels_in_every_common_format(line: str, level: str) -> None:
    assert level_of(line) == level


def test_a_java_exception_is_its_headline_and_its_deepest_cause() -> None:
    entry = (
        "2026-12-01 09:30:00.000 ERROR 1 --- [exec-3] o.a.c.c.C.[dispatcherServlet] : "
        "Servlet.service() threw exception\n"
        "org.springframework.dao.DataAccessResourceFailureException: could not prepare\n"
        "\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.convert(H.java:277)\n"
        "\t... 54 common frames omitted\n"
        "Caused by: org.hibernate.exception.JDBCConnectionException: unable to connect\n"
        "\tat org.hibernate.exception.internal.SQLStateConversionDelegate.convert(S.java:100)\n"
        "Caused by: java.net.ConnectException: Connection refused\n"
        "\tat java.base/sun.nio.ch.Net.connect0(Native Method)\n"
    )
    text = condense(entry)
    assert text.startswith("2026-12-01 09:30:00.000 ERROR 1")
    assert text.endswith("java.net.ConnectException: Connection refused")
    assert "\tat" not in text and "network" in tags_of(text)


def test_a_python_traceback_is_its_message_and_its_last_line() -> None:
    entry = (
        "ERROR:root:Exception in worker\n"
        "Traceback (most recent call last):\n"
        '  File "/app/worker.py", line 42, in run\n'
        "    conn = psycopg2.connect(dsn)\n"
        "psycopg2.OperationalError: FATAL:  remaining connection slots are reserved"
    )
    text = condense(entry)
    assert text == (
        "ERROR:root:Exception in worker ... psycopg2.OperationalError: FATAL:  remaining "
        "connection slots are reserved"
    )
    assert "database" in tags_of(text)


def test_json_lines_read_as_level_message_and_error() -> None:
    line = (
        '{"time":"2026-12-01T09:30:00Z","level":"error","msg":"payment failed",'
        '"status":429,"error":"POST https://acquirer/charge: 429 Too Many Requests",'
        '"trace_id":"abc"}'
    )
    text = condense(line)
    # The error last: a clipped quote keeps a line's start and end.
    assert text == (
        "error payment failed status=429 trace_id=abc "
        "error=POST https://acquirer/charge: 429 Too Many Requests"
    )
    assert "rate_limit" in tags_of(text)


@pytest.mark.parametrize(
    "line",
    [
        "\tat com.acme.Orders.place(Orders.java:88)",
        "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)",
        '  File "/app/worker.py", line 42, in run',
        "Traceback (most recent call last):",
        "goroutine 1 [running]:",
        "\t/app/internal/orders/handler.go:57 +0x1d",
        "main.(*Server).handle(0xc000123400, 0x1)",
        "\t... 54 common frames omitted",
    ],
)
def test_stack_frames_are_frames(line: str) -> None:
    assert is_frame(line)


@pytest.mark.parametrize(
    "line",
    ["Caused by: java.net.SocketTimeoutException: Read timed out", "at 09:30 the job started"],
)
def test_messages_are_not_frames(line: str) -> None:
    assert not is_frame(line)


@pytest.mark.parametrize(
    "line",
    [
        'level=info msg="sync done" errors=0 failed=0',
        '{"level":"info","msg":"request done","error":null}',
        "batch 41 finished: 1200 rows, 0 errors",
        'level=info msg="dial ok" err=<nil>',
    ],
)
def test_fields_saying_nothing_failed_are_not_errors(line: str) -> None:
    assert "error" not in tags_of(condense(line))


def test_frames_logged_one_per_entry_do_not_crowd_the_ranking() -> None:
    """A collector without a multiline stage ships each frame as an entry: the exception
    line is ranked, the frames are not templates at all."""
    lines = [LogLine(float(i), "INFO GET /health 200", False) for i in range(50)]
    for i in range(5):
        at = 1000.0 + i * 30
        lines += [
            LogLine(at, "ERROR c.a.Orders: order failed", True),
            LogLine(at, "\tat com.acme.Orders.place(Orders.java:88)", True),
            LogLine(at, "\tat com.acme.Http.handle(Http.java:12)", True),
            LogLine(at, "Caused by: java.net.SocketTimeoutException: Read timed out", True),
        ]
    ranked = rank(lines, 900.0, 900.0)
    assert not any("Orders.java" in t.example or "Http.java" in t.example for t in ranked)
    assert ranked[0].example.startswith("Caused by: java.net.SocketTimeoutException")


def test_logfmt_lines_read_as_level_message_fields_then_the_error() -> None:
    line = (
        'ts=2026-12-02T11:00:00Z level=error caller=checkout/reserve.go:71 msg="reserve stock '
        'failed" err="rpc error: code = Unavailable desc = dial tcp 10.0.4.12:50051: connect: '
        'connection refused"'
    )
    assert condense(line) == (
        "error reserve stock failed caller=checkout/reserve.go:71 err=rpc error: code = "
        "Unavailable desc = dial tcp 10.0.4.12:50051: connect: connection refused"
    )
    # Plain text that happens to hold a pair or two is left alone.
    plain = "GET /search q=shoes took 41ms"
    assert condense(plain) == plain


def test_a_long_line_keeps_its_start_and_its_reason() -> None:
    line = "2026-12-02T11:00:00Z " + "ERROR call failed " + "x" * 300 + " connection refused"
    short = shorten(line, 240)
    assert len(short) <= 240 and short.startswith("ERROR call failed")
    assert short.endswith("connection refused")


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        ("org.hibernate.PessimisticLockException: could not obtain lock", "lock"),
        ("sqlite3.OperationalError: database is locked", "lock"),
        ("redis lock: failed to acquire lock order:42 within 5s", "lock"),
        ("Command failed with error 112 (WriteConflict)", "lock"),
        ("Job has reached the specified backoff limit (BackoffLimitExceeded)", "job"),
        ('Job "nightly_export (trigger: cron[hour=2])" raised an exception', "job"),
        ("(CRON) error (grandchild #4121 failed with exit status 2)", "job"),
        ("Marking task as FAILED. dag_id=etl, task_id=load", "job"),
        (
            "CommitFailedException: Commit cannot be completed since the group has rebalanced",
            "consumer",
        ),
        (
            "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out",
            "consumer",
        ),
        ("celery.exceptions.WorkerLostError: Worker exited prematurely: signal 9", "consumer"),
        ("rpc error: code = ResourceExhausted desc = quota exceeded", "rate_limit"),
        ("kernel: ixgbe 0000:03:00.1 eth1: changing MTU from 1500 to 9000", "mtu"),
        ("ansible-ansible.legacy.file Invoked with path=/etc/x state=absent", "change"),
        ("puppet-agent[812]: Applied catalog in 4.21 seconds", "change"),
        (
            'Post "https://pricing:8443/q": dial tcp 10.3.2.17:8443: connect: cannot assign '
            "requested address",
            "ports",
        ),
        ("ICMP fragmentation needed and DF set from 10.0.0.1 (mtu 1450)", "mtu"),
        ("status=401 reason=token has invalid claims: token is not valid yet", "clock"),
        (
            "redis.clients.jedis.exceptions.JedisException: Could not get a resource from the pool",
            "database",
        ),
        ("Cannot get a connection, pool error Timeout waiting for idle object", "database"),
        # The same causes as other runtimes and libraries word them.
        ("wget: bad address 'api.example.com': Name does not resolve", "dns"),
        ("socket.gaierror: [Errno -3] Temporary failure", "dns"),
        ('[error] 7#7: host not found in upstream "pricing:8080"', "dns"),
        ("PKIX path building failed: unable to find valid certification path", "tls"),
        ("Error: certificate has expired (code: CERT_HAS_EXPIRED)", "tls"),
        ("x509: certificate is valid for a.corp, b.corp, not billing.corp", "tls"),
        ("Hostname/IP does not match certificate's altnames: Host: billing.corp", "tls"),
        ('remote error: tls: expired certificate"', "tls"),
        ("java.net.ConnectException: Connection refused (Connection refused)", "network"),
        ("urllib3: Max retries exceeded with url: /v1/quote (NewConnectionError)", "network"),
        ("OSError: [Errno 28] cannot write '/var/lib/x/part'", "disk"),
        ("write /srv/data/x: disk quota exceeded", "disk"),
        ("upload failed: An error occurred (AccessDenied) when calling PutObject", "auth"),
        ("Error response from daemon: pull access denied for registry.local/app", "auth"),
        ("Waiting for table metadata lock | ALTER TABLE orders ADD COLUMN x", "lock"),
        ("failed to process message_id=ord-5f delivery_tag=9 redelivered=True: KeyError", "poison"),
        ("WARNING fulfil.worker: nack delivery_tag=918222 requeue=True", "poison"),
        # The kubelet short of disk space.
        (
            'eviction_manager.go:366] "Eviction manager: attempting to reclaim" '
            'resourceName="ephemeral-storage"',
            "disk",
        ),
        ("The node was low on resource: ephemeral-storage. Threshold quantity: 10%", "disk"),
        ('kubelet.go:1590] "Image garbage collection failed multiple times in a row"', "disk"),
    ],
)
def test_application_causes_in_their_stacks_words(line: str, tag: str) -> None:
    assert tag in tags_of(line)


@pytest.mark.parametrize(
    "line",
    [
        'kubelet.go:1590] "Image garbage collection failed multiple times in a row"',
        'err="failed to garbage collect required amount of images"',
    ],
)
def test_the_kubelets_image_collection_is_no_runtime_gc(line: str) -> None:
    assert "gc" not in tags_of(line)
    assert "gc" in tags_of("runtime: garbage collection took 2.1s")


def test_a_handler_raising_an_exception_is_no_failed_job() -> None:
    assert "job" not in tags_of("ERROR handler raised an exception: KeyError 'sku'")


def test_a_key_error_on_data_is_a_bug_and_on_an_environment_variable_a_setting() -> None:
    assert "config" not in tags_of("quote: KeyError: 'enterprise'")
    assert "config" in tags_of("KeyError: 'DATABASE_URL'")


def test_sudo_run_by_a_user_called_deploy_is_no_release() -> None:
    line = "sudo: deploy : TTY=pts/1 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/df -h"
    assert "deploy" not in tags_of(line)


def test_hung_tasks_blocked_in_nfs_calls_point_at_the_file_server() -> None:
    assert "nfs" in tags_of("kernel: nfs4_call_sync_sequence+0x74/0xb0 [nfsv4]")
    assert "nfs" in tags_of("kernel: rpc_wait_bit_killable+0x11/0x70 [sunrpc]")
    assert "nfs" not in tags_of("kernel: ext4_file_read_iter+0x5a/0x170")


def test_a_start_up_line_with_build_details_names_a_release() -> None:
    line = "INFO quote-service 4.12.0 (git 9c41e7d, built 2026-12-03T11:02:44Z) starting"
    assert "deploy" in tags_of(line)


def test_ecs_loggings_schema_version_is_no_release() -> None:
    line = "INFO node-left[es-3] reason: disconnected ecs.version=1.2.0 service.name=ES_ECS"
    assert "deploy" not in tags_of(line)
    assert "deploy" in tags_of("INFO app version=2.3.1 started")


def test_the_kernels_own_log_throttling_is_no_rate_limit() -> None:
    assert "rate_limit" not in tags_of("kernel: net_ratelimit: 1867 callbacks suppressed")
    assert "rate_limit" in tags_of("upstream answered: X-RateLimit-Remaining: 0, rate limited")


@pytest.mark.parametrize(
    "line",
    [
        'Exception in thread "main" java.lang.IllegalStateException: no datasource',
        "    triggerUncaughtException(err, true /* fromPromise */);",
    ],
)
def test_a_process_dying_on_an_unhandled_exception_is_a_crash(line: str) -> None:
    assert "crash" in tags_of(line)


def test_a_periodic_line_the_last_run_read_caught_is_background_not_a_failure() -> None:
    """A job alert reads failure-worded lines hours back and counts them as recent; an
    AppArmor denial every 50 minutes is caught too, but it recurs all day: its lines before
    the recent window are its baseline. The job's own failure, once, stays recent."""
    denial = 'kernel: audit: apparmor="DENIED" operation="open" profile="snap.x" name="/proc/1"'
    failure = 'pg_dump: error: FATAL: password authentication failed for user "backup"'
    lines = [
        LogLine(float(t), "INFO checkpoint complete", t >= 10000) for t in range(0, 11000, 300)
    ]
    lines += [LogLine(float(t), denial, True, "base") for t in (1000, 4000, 7000)]
    lines += [LogLine(10500.0, denial, True)]
    lines += [LogLine(2000.0, failure, True, "base")]
    ranked = {t.example: t for t in rank(lines, 900.0, 9000.0)}
    assert ranked[denial].count == 1 and ranked[denial].baseline_count == 3
    assert ranked[denial].novelty == "steady"
    assert ranked[failure].count == 1 and ranked[failure].novelty == "new"


def test_a_job_failing_every_hour_keeps_its_failures_as_recent() -> None:
    failure = "backup.service: Failed with result 'exit-code'."
    lines = [
        LogLine(float(t), "INFO checkpoint complete", t >= 10000) for t in range(0, 11000, 300)
    ]
    lines += [LogLine(float(t), failure, True, "base") for t in (600, 4200, 7800)]
    ranked = {t.example: t for t in rank(lines, 900.0, 9000.0)}
    assert ranked[failure].count == 3


def test_a_long_nginx_error_line_keeps_its_upstream_and_drops_the_referrer() -> None:
    from aiops_analyzer.evidence.logline import shorten

    line = (
        "2026/12/04 20:00:15 [error] 29#29: *83 SSL_do_handshake() failed (SSL: error:0A000102"
        ":SSL routines::unsupported protocol) while SSL handshaking to upstream, client: "
        '10.30.3.9, server: portal.corp.example, request: "GET /billing/api/invoices?status='
        'open HTTP/1.1", upstream: "https://10.30.8.21:443/billing/api/invoices?status=open", '
        'host: "portal.corp.example", referrer: "https://portal.corp.example/a/long/page"'
    )
    short = shorten(line, 300)
    assert len(short) <= 300
    assert "https://10.30.8.21:443/billing" in short and "referrer" not in short
    assert short.startswith("[error] 29#29")

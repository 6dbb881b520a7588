"""Several analyzer processes sharing one PostgreSQL: every alert state is stored once and
analysed once, whichever replica receives it, and a replica that dies or restarts loses
nothing and makes nobody analyse twice.

Each replica is a real `aiops-analyzer serve` process; the model is a loopback
OpenAI-compatible server that records every request, so "analysed once" is counted where it
matters: calls to the model, per alert (each alert carries a unique label the prompt quotes).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiops_analyzer.store import JobState, Store

from tests.service.apptools import AUTH, WEBHOOK, AnalyzerProcess, payload
from tests.service.loopback import LoopbackServer, Recorded, Reply
from tests.service.test_engine_llm import GOOD, completion
from tests.support.postgres import PostgresServer

# Short enough for a dead replica's jobs to come back quickly, long enough that a live one on
# a loaded machine still renews in time (renewal every third of it).
SHORT_LEASE = 3.0
# Where no replica dies: no lease should ever expire.
LONG_LEASE = 30.0
_UID = re.compile(r"uid-\d{4}")


class Model:
    """The loopback model: answers after ``delay`` seconds and once ``gate`` is open; counts
    calls per alert uid."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.server = LoopbackServer(self._answer)

    def _answer(self, _: Recorded) -> Reply:
        self.gate.wait(timeout=300)
        return Reply(body=completion(json.dumps(GOOD)), delay=self.delay)

    def calls(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for request in list(self.server.requests):
            found = set(_UID.findall(request.body.decode(errors="replace")))
            assert len(found) == 1, "each prompt quotes exactly one alert"
            counts[found.pop()] += 1
        return counts


@pytest.fixture
def model() -> Iterator[Model]:
    fake = Model()
    with fake.server:
        yield fake


def alerts_payload(first: int, count: int) -> dict[str, Any]:
    """``count`` alerts uid-<first>... with their own fingerprints and uid labels."""
    body = payload(fingerprint="replica", count=count)
    for n, alert in enumerate(body["alerts"], start=first):
        alert["fingerprint"] = f"fp-{n:04d}"
        alert["labels"]["instance"] = f"uid-{n:04d}"
    return body


class Replicas:
    def __init__(self, tmp_path: Path, database_url: str, model: Model, lease: float) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.env = {
            "AIOPS_DATABASE_URL": database_url,
            "AIOPS_ENGINE": "llm",
            "AIOPS_OPENAI_API_KEY": "sk-test-loopback-only-0123456789abcdef",
            "AIOPS_LLM_BASE_URL": f"{model.server.url}/v1",
            "AIOPS_LLM_MAX_RETRIES": "0",
            "AIOPS_LLM_TIMEOUT_SECONDS": "300",
            "AIOPS_LLM_DAILY_TOKEN_BUDGET": "0",
            "AIOPS_WORKERS": "4",
            "AIOPS_JOB_LEASE_SECONDS": str(lease),
        }
        self.processes: list[AnalyzerProcess] = []

    def new(self, name: str) -> AnalyzerProcess:
        data_dir = self.tmp_path / name
        data_dir.mkdir(exist_ok=True)
        process = AnalyzerProcess(data_dir, **self.env)
        self.processes.append(process)
        return process

    def start(self, count: int) -> list[AnalyzerProcess]:
        created = [self.new(f"replica-{n}") for n in range(count)]
        # Started together: they race for the schema migration too.
        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(lambda p: p.start(timeout=120), created))

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()

    def store(self) -> Store:
        return Store(self.database_url)

    def wait_all_done(self, total: int, within: float = 120.0) -> None:
        store = self.store()
        try:
            deadline = time.monotonic() + within
            while True:
                done = store.analyses.list(state=JobState.DONE, limit=1)[1]
                if done == total:
                    return
                if time.monotonic() > deadline:
                    states = {s: store.analyses.list(state=s, limit=1)[1] for s in JobState}
                    logs = "\n".join(p.log()[-3000:] for p in self.processes)
                    raise AssertionError(f"not all done: {states}\n{logs}")
                time.sleep(0.2)
        finally:
            store.dispose()

    def running_of(self, process: AnalyzerProcess) -> set[int]:
        """Ids of the jobs whose lease ``process`` holds now (its owner id names its pid)."""
        assert process.proc is not None
        marker = f":{process.proc.pid}:"
        store = self.store()
        try:
            running, _ = store.analyses.list(state=JobState.RUNNING, limit=500)
        finally:
            store.dispose()
        return {r.id for r in running if r.job.lease_owner and marker in r.job.lease_owner}


@contextmanager
def replicas(
    tmp_path: Path, server: PostgresServer, model: Model, *, lease: float = LONG_LEASE
) -> Iterator[Replicas]:
    group = Replicas(tmp_path, server.create_database("replicas"), model, lease)
    with ExitStack() as stack:
        stack.callback(group.stop_all)
        yield group


def post(url: str, body: dict[str, Any]) -> list[int]:
    response = httpx.post(url + WEBHOOK, json=body, headers=AUTH, timeout=30)
    assert response.status_code == 202, response.text
    ids: list[int] = response.json()["analysis_ids"]
    return ids


def analyses_by_uid(database_url: str) -> dict[str, Any]:
    store = Store(database_url)
    try:
        records: list[Any] = []
        while more := store.analyses.list(limit=500, offset=len(records))[0]:
            records += more
    finally:
        store.dispose()
    return {r.alert.labels["instance"]: r for r in records}


def test_ha_duplicates_sent_to_different_replicas_give_one_analysis(
    tmp_path: Path, postgres_server: PostgresServer, model: Model
) -> None:
    """Alertmanager's HA pair delivers every group twice; here each copy reaches another
    replica, at the same moment."""
    with replicas(tmp_path, postgres_server, model) as group:
        first, second = group.start(2)
        bodies = [alerts_payload(n * 5, 5) for n in range(8)]
        with ThreadPoolExecutor(16) as pool:
            from_first = pool.map(lambda b: post(first.url, b), bodies)
            from_second = pool.map(lambda b: post(second.url, b), bodies)
            assert list(from_first) == list(from_second)  # The same ids from both.
        group.wait_all_done(40)
        records = analyses_by_uid(group.database_url)
    assert len(records) == 40
    assert all(r.deliveries == 2 for r in records.values())
    calls = model.calls()
    assert set(calls) == set(records) and set(calls.values()) == {1}


def test_a_thousand_alerts_over_three_replicas_are_each_analysed_once(
    tmp_path: Path, postgres_server: PostgresServer, model: Model
) -> None:
    with replicas(tmp_path, postgres_server, model) as group:
        processes = group.start(3)
        bodies = [alerts_payload(n * 10, 10) for n in range(100)]
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda nb: post(processes[nb[0] % 3].url, nb[1]), enumerate(bodies)))
        group.wait_all_done(1000, within=300)
        records = analyses_by_uid(group.database_url)
        done_per_replica = [p.log().count('"event": "job_done"') for p in processes]
    assert len(records) == 1000 and all(r.job.attempts == 1 for r in records.values())
    calls = model.calls()
    assert len(calls) == 1000 and set(calls.values()) == {1}
    assert sum(done_per_replica) == 1000 and all(done_per_replica), done_per_replica


def test_sigkill_one_replica_mid_run_only_its_jobs_are_asked_again(
    tmp_path: Path, postgres_server: PostgresServer, model: Model
) -> None:
    model.delay = 1.0
    with replicas(tmp_path, postgres_server, model, lease=SHORT_LEASE) as group:
        processes = group.start(3)
        victim = processes[2]
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda n: post(processes[n % 3].url, alerts_payload(n * 6, 6)), range(6)))
        # Kill the victim while it holds jobs (it is waiting for the slow model).
        deadline = time.monotonic() + 30
        while not (in_flight := group.running_of(victim)):
            assert time.monotonic() < deadline, "the victim never held a job"
            time.sleep(0.05)
        in_flight = group.running_of(victim) or in_flight
        victim.kill()
        model.delay = 0.2
        group.wait_all_done(36, within=120)
        records = analyses_by_uid(group.database_url)
        released = "leases_expired" in "".join(p.log() for p in processes[:2])
    killed_uids = {uid for uid, r in records.items() if r.id in in_flight}
    assert killed_uids and released
    calls = model.calls()
    assert set(calls) == set(records)
    # Everyone else's alert was asked once; the dead replica's in-flight ones at most twice.
    assert {uid: n for uid, n in calls.items() if n != 1}.keys() <= killed_uids
    assert max(calls.values()) <= 2
    assert all(records[uid].job.attempts == 2 for uid in killed_uids)


def test_a_restarting_replica_takes_nothing_from_the_live_ones(
    tmp_path: Path, postgres_server: PostgresServer, model: Model
) -> None:
    """The model holds every answer while a replica restarts and then runs for several
    leases beside the two that hold jobs: nothing held is taken back, nothing asked twice."""
    model.gate.clear()
    with replicas(tmp_path, postgres_server, model, lease=SHORT_LEASE) as group:
        first, second, restarting = group.start(3)
        restarting.stop()  # Down before any work, then back while the others hold jobs.
        for n in range(4):
            post((first, second)[n % 2].url, alerts_payload(n * 5, 5))
        deadline = time.monotonic() + 60
        while len(held := group.running_of(first) | group.running_of(second)) < 8:
            assert time.monotonic() < deadline, "the live replicas never held all their jobs"
            time.sleep(0.1)
        restarting.start(timeout=120)
        time.sleep(2 * SHORT_LEASE)  # Every replica's reaper has looked, twice.
        assert group.running_of(first) | group.running_of(second) == held
        assert group.running_of(restarting).isdisjoint(held)  # Pending ones, none of theirs.
        model.gate.set()
        group.wait_all_done(20, within=120)
        records = analyses_by_uid(group.database_url)
    calls = model.calls()
    assert len(calls) == 20 and set(calls.values()) == {1}
    assert all(r.job.attempts == 1 for r in records.values())

"""The world files of the held-out sets load: every series and stream ends by the delivery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiops_eval.world import WorldError, expand_values, load_world

from tests.eval.eval_helpers import REPO

HOLDOUT_2 = REPO / "eval" / "holdout-2"
HOLDOUT_3 = REPO / "eval" / "holdout-3"
FOLDERS = sorted(p.parent for s in (HOLDOUT_2, HOLDOUT_3) for p in s.glob("*/world.yml"))


def test_the_second_holdout_set_has_at_least_twenty_scenarios() -> None:
    assert len(list(HOLDOUT_2.glob("*/world.yml"))) >= 20


@pytest.mark.parametrize("folder", FOLDERS, ids=[f"{f.parent.name}/{f.name}" for f in FOLDERS])
def test_every_world_loads_and_ends_at_the_delivery(folder: Path) -> None:
    world = load_world(folder / "world.yml")
    payload = json.loads((folder / "payload.json").read_text())
    assert world.series or world.streams
    assert all(at <= 0 for s in world.series for at, _ in s.samples)
    assert all(line.at <= 0 for s in world.streams for line in s.lines)
    assert payload["alerts"], folder.name


def test_the_series_notation_follows_promtool() -> None:
    assert expand_values("1+2x2") == [1.0, 3.0, 5.0]
    assert expand_values("5-1x2") == [5.0, 4.0, 3.0]
    assert expand_values("7x2 _x2 stale") == [7.0, 7.0, 7.0, None, None, "stale"]
    assert expand_values("1+1x1 ...+10x2") == [1.0, 2.0, 12.0, 22.0]
    assert expand_values("-5x1") == [-5.0, -5.0]
    with pytest.raises(WorldError, match="continues a series"):
        expand_values("...+1x2")
    with pytest.raises(WorldError, match="not a sample"):
        expand_values("1 two 3")


TUNING_BASE = REPO / "eval" / "scenarios" / "_base"


def _world_including(tmp_path: Path, includes: str) -> Path:
    path = tmp_path / "world.yml"
    path.write_text(f"delivered_at: 2026-11-20T03:15:00Z\ninclude:\n{includes}", encoding="utf-8")
    return path


def test_the_tuning_base_worlds_load_with_their_defaults(tmp_path: Path) -> None:
    includes = "".join(
        f"  - file: {TUNING_BASE / f.name}\n" for f in sorted(TUNING_BASE.glob("*.yml"))
    )
    world = load_world(_world_including(tmp_path, includes))
    names = {s.name for s in world.series}
    assert {
        "node_cpu_seconds_total",
        "node_pressure_memory_waiting_seconds_total",
        "node_filesystem_files_free",
        "node_timex_offset_seconds",
        "node_nf_conntrack_entries",
        "container_memory_working_set_bytes",
        "container_start_time_seconds",
    } <= names
    cpus = {
        (s.labels["cpu"], s.labels["mode"])
        for s in world.series
        if s.name == "node_cpu_seconds_total"
    }
    assert {c for c, _ in cpus} == {"0", "1"} and len(cpus) == 16
    assert all(-3 * 3600 <= at <= 0 for s in world.series for at, _ in s.samples)
    units = {s.labels["unit"] for s in world.streams}
    assert {"kernel", "cron.service", "ssh.service"} <= units
    assert all(s.labels["job"] == "systemd-journal" for s in world.streams)


def test_an_include_overrides_a_default_and_keeps_the_others(tmp_path: Path) -> None:
    includes = (
        f"  - file: {TUNING_BASE / 'container.yml'}\n"
        "    vars: {name: ledger-9, limit: 1073741824}\n"
        f"  - file: {TUNING_BASE / 'journal.yml'}\n"
        "    vars: {instance: 'db-2:9100'}\n"
    )
    world = load_world(_world_including(tmp_path, includes))
    limit = next(s for s in world.series if s.name == "container_spec_memory_limit_bytes")
    assert limit.labels["name"] == "ledger-9" and limit.labels["job"] == "cadvisor"
    assert limit.samples[-1][1] == 1073741824
    assert {s.labels["instance"] for s in world.streams} == {"db-2:9100"}
    assert {s.labels["host"] for s in world.streams} == {"host-1"}  # the default


def test_a_variable_without_a_value_or_default_is_named(tmp_path: Path) -> None:
    shared = tmp_path / "shared.yml"
    shared.write_text(
        "defaults: {a: 1}\n---\nseries:\n  - {series: 'x{a=\"${a}\"}', values: '${b}x1'}\n"
    )
    with pytest.raises(WorldError, match="'b' is not given"):
        load_world(_world_including(tmp_path, f"  - file: {shared}\n"))


def test_the_shared_folder_is_not_a_scenario() -> None:
    from aiops_eval.scenario import load_scenarios

    names = {s.name.split("/")[0] for s in load_scenarios(REPO / "eval" / "scenarios")}
    assert "_base" not in names and names

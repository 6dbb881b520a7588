"""The world files of eval/holdout-2 load: every series and stream ends by the delivery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiops_eval.world import WorldError, expand_values, load_world

from tests.eval.eval_helpers import REPO

HOLDOUT_2 = REPO / "eval" / "holdout-2"
FOLDERS = sorted(p.parent for p in HOLDOUT_2.glob("*/world.yml"))


def test_the_second_holdout_set_has_at_least_twenty_scenarios() -> None:
    assert len(FOLDERS) >= 20


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_every_world_loads_and_ends_at_the_delivery(folder: Path) -> None:
    world = load_world(folder / "world.yml")
    payload = json.loads((folder / "payload.json").read_text())
    assert world.series or world.streams
    assert all(at <= 0 for s in world.series for at, _ in s.samples)
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

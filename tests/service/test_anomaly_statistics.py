"""Robust statistics on short series: how monotonic a series is."""

from __future__ import annotations

from aiops_analyzer.evidence.anomaly import kendall_tau
from hypothesis import given
from hypothesis import strategies as st


def test_kendall_tau_reads_direction_not_size() -> None:
    steps = [(float(t), 0.86 + 0.001 * t) for t in range(20)]  # tiny, steady steps up
    assert kendall_tau(steps) == 1.0
    assert kendall_tau([(t, -v) for t, v in steps]) == -1.0
    zigzag = [(float(t), 1.0 if t % 2 else 0.0) for t in range(20)]
    assert abs(kendall_tau(zigzag)) < 0.1
    assert kendall_tau([(0.0, 1.0)]) == 0.0 and kendall_tau([]) == 0.0


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40))
def test_kendall_tau_is_bounded_and_flips_with_time(values: list[float]) -> None:
    points = [(float(i), v) for i, v in enumerate(values)]
    tau = kendall_tau(points)
    assert -1.0 <= tau <= 1.0
    backwards = [(float(-i), v) for i, v in enumerate(values)]
    assert kendall_tau(backwards) == -tau

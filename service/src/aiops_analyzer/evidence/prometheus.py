"""Prometheus evidence: the alert's own expression over time, plus family-specific context.

Each query is a range query (``/api/v1/query_range``) over the alert window, summarised per
series as labels, min/max/last, its shape and a few points (``series.py``), so an engine sees
the shape of the problem in a few hundred characters. Queries run concurrently, each with
its own timeout.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import Any

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence.common import Window, alert_window, describe_error, unavailable
from aiops_analyzer.evidence.expression import alert_expression, metric_names
from aiops_analyzer.evidence.series import describe, fmt, render
from aiops_analyzer.schemas import Alert, EvidenceItem, SeriesPoints

MAX_SERIES = 5
POINTS_SHOWN = 5
CHART_POINTS = 120
TARGET_POINTS = 60  # about one point a minute over the default 30-minute window
MAX_FAMILY_QUERIES = 5


@dataclass(frozen=True)
class NamedQuery:
    title: str
    promql: str


def plan_queries(alert: Alert) -> list[NamedQuery]:
    """The alert's own expression first, then queries chosen by what the alert is about."""
    plan: list[NamedQuery] = []
    expr = alert_expression(alert)
    if expr:
        plan.append(NamedQuery("alert expression", expr))
    family: list[NamedQuery] = []
    family += _container_queries(alert, expr)
    family += _host_queries(alert, expr)
    family += _nginx_queries(alert, expr)
    plan += family[:MAX_FAMILY_QUERIES]
    return plan


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _metrics(expr: str) -> list[str]:
    return metric_names(expr) if expr else []


def _container_selector(labels: dict[str, str]) -> str | None:
    for key in ("name", "container", "container_label_com_docker_compose_service"):
        if labels.get(key):
            return f"{key}={_quote(labels[key])}"
    for key in sorted(labels):
        if key.startswith("container_label_") and labels[key]:
            return f"{key}={_quote(labels[key])}"
    return None


def _container_queries(alert: Alert, expr: str) -> list[NamedQuery]:
    labels = alert.labels
    about_container = any(m.startswith("container_") for m in _metrics(expr)) or any(
        k in labels or k.startswith("container_label_") for k in ("name", "container")
    )
    selector = _container_selector(labels) if about_container else None
    if not selector:
        return []
    s = "{" + selector + "}"
    return [
        NamedQuery(
            "container CPU cores used",
            f"sum by (name) (rate(container_cpu_usage_seconds_total{s}[5m]))",
        ),
        NamedQuery(
            "container memory working set / limit",
            f"max by (name) (container_memory_working_set_bytes{s})"
            f" / max by (name) (container_spec_memory_limit_bytes{s} > 0)",
        ),
        NamedQuery(
            "container memory working set bytes",
            f"max by (name) (container_memory_working_set_bytes{s})",
        ),
        NamedQuery(
            "container restarts in 15m",
            f"max by (name) (changes(container_start_time_seconds{s}[15m]))",
        ),
        NamedQuery(
            "seconds since container last seen", f"max by (name) (time() - container_last_seen{s})"
        ),
    ]


def _host_queries(alert: Alert, expr: str) -> list[NamedQuery]:
    instance = alert.labels.get("instance")
    if not instance or not any(m.startswith("node_") for m in _metrics(expr)):
        return []
    i = f"instance={_quote(instance)}"
    fs = f'{i},fstype!~"tmpfs|overlay|squashfs|ramfs"'
    return [
        NamedQuery(
            "host load1 per CPU",
            f"node_load1{{{i}}} / on (instance) count by (instance) "
            f'(node_cpu_seconds_total{{{i},mode="idle"}})',
        ),
        NamedQuery(
            "host memory available ratio",
            f"node_memory_MemAvailable_bytes{{{i}}} / node_memory_MemTotal_bytes{{{i}}}",
        ),
        NamedQuery(
            "host filesystem available ratio",
            f"node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}",
        ),
    ]


def _nginx_queries(alert: Alert, expr: str) -> list[NamedQuery]:
    labels = alert.labels
    about_nginx = any(m.startswith("nginx_") for m in _metrics(expr)) or "nginx" in labels.get(
        "job", ""
    )
    if not about_nginx:
        return []
    if labels.get("instance"):
        sel = f"instance={_quote(labels['instance'])}"
    elif labels.get("job"):
        sel = f"job={_quote(labels['job'])}"
    else:
        return []
    return [
        NamedQuery("nginx up (exporter reaches nginx)", f"nginx_up{{{sel}}}"),
        NamedQuery(
            "nginx requests per second", f"sum(rate(nginx_http_requests_total{{{sel}}}[5m]))"
        ),
    ]


async def collect(alert: Alert, settings: Settings, http: httpx.AsyncClient) -> list[EvidenceItem]:
    plan = plan_queries(alert)
    if not settings.prometheus_url:
        query = plan[0].promql if plan else ""
        return [unavailable("prom-1", "prometheus", query, "AIOPS_PROMETHEUS_URL is not set")]
    if not plan:
        return [
            EvidenceItem(
                id="prom-1",
                source="prometheus",
                status="empty",
                detail="the alert carries no expression (no g0.expr in generatorURL) "
                "and no container/host/nginx labels to query by",
            )
        ]
    window = alert_window(alert, settings)
    base = settings.prometheus_url.rstrip("/")
    items = await asyncio.gather(
        *(
            _run(f"prom-{n}", q, base, window, settings.evidence_timeout_seconds, http)
            for n, q in enumerate(plan, start=1)
        )
    )
    return list(items)


def _step_seconds(window: Window) -> int:
    return max(1, math.ceil(window.seconds / TARGET_POINTS))


def range_params(window: Window) -> dict[str, str]:
    """start/end/step with ``end - start`` a whole number of steps.

    Prometheus evaluates a range query at start, start + step, ... up to end, so with an
    unaligned start the last point falls up to one step before ``end`` and a condition that
    became true in that last step would read as "no data". Moving start back (by less than a
    step) makes ``end`` itself, normally now, the last evaluation. Integer milliseconds, as
    Prometheus parses them, so no float rounding can drop the last step.
    """
    step = _step_seconds(window)
    end_ms = math.floor(window.end.timestamp() * 1000)
    steps = math.ceil(window.seconds / step)
    start_ms = end_ms - steps * step * 1000
    return {"start": _seconds(start_ms), "end": _seconds(end_ms), "step": str(step)}


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


async def _run(
    item_id: str,
    query: NamedQuery,
    base: str,
    window: Window,
    seconds: float,
    http: httpx.AsyncClient,
) -> EvidenceItem:
    params = {"query": query.promql, **range_params(window)}
    try:
        async with asyncio.timeout(seconds):
            response = await http.get(f"{base}/api/v1/query_range", params=params, timeout=seconds)
            body = response.json() if _is_json(response) else None
    except Exception as exc:
        return unavailable(item_id, "prometheus", query.promql, f"prometheus {describe_error(exc)}")
    if not isinstance(body, dict):
        return unavailable(
            item_id,
            "prometheus",
            query.promql,
            f"prometheus answered HTTP {response.status_code} without JSON",
        )
    if body.get("status") != "success":
        error = str(body.get("error") or f"HTTP {response.status_code}")
        return unavailable(item_id, "prometheus", query.promql, f"prometheus query error: {error}")
    result = (body.get("data") or {}).get("result") or []
    if not isinstance(result, list) or not result:
        return EvidenceItem(
            id=item_id,
            source="prometheus",
            query=query.promql,
            status="empty",
            text=f"{query.title}: no data in the window",
            detail="query returned no series",
        )
    return EvidenceItem(
        id=item_id,
        source="prometheus",
        query=query.promql,
        text=summarise(query.title, result, window),
        series=chart_series(result),
        threshold=threshold_of(query.promql) if query.title == "alert expression" else None,
    )


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def _number(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _labels(metric: dict[str, Any]) -> str:
    parts = [f"{k}={str(v)[:60]}" for k, v in sorted(metric.items())][:6]
    return "{" + ", ".join(parts) + "}"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return "now" if seconds < 1 else f"-{seconds:.0f}s"
    return f"-{seconds / 60:.0f}m"


def summarise(title: str, result: list[Any], window: Window) -> str:
    """Per series: labels, min/max/last, shape and a few evenly spaced points."""
    series = _parsed(result)
    end_ts = window.end.timestamp()
    step = _step_seconds(window)
    lines = [f"{title}: {len(series)} series over {window.seconds / 60:.0f}m"]
    for metric, points in series[:MAX_SERIES]:
        if len(points) <= POINTS_SHOWN:
            shown = points
        else:
            stride = math.ceil(len(points) / (POINTS_SHOWN - 1))
            shown = [*points[:-1:stride][: POINTS_SHOWN - 1], points[-1]]
        sample = ", ".join(f"{_ago(end_ts - ts)}={fmt(v)}" for ts, v in shown)
        lines.append(render(describe(_labels(metric), points, step), sample))
    if len(series) > MAX_SERIES:
        lines.append(f"(+{len(series) - MAX_SERIES} more series not shown)")
    return "\n".join(lines)


def _parsed(result: list[Any]) -> list[tuple[dict[str, Any], list[tuple[float, float]]]]:
    series: list[tuple[dict[str, Any], list[tuple[float, float]]]] = []
    for entry in result:
        if not isinstance(entry, dict):
            continue
        points: list[tuple[float, float]] = []
        for pair in entry.get("values") or ([entry["value"]] if "value" in entry else []):
            if isinstance(pair, list | tuple) and len(pair) == 2:
                ts, value = _number(pair[0]), _number(pair[1])
                if ts is not None and value is not None:
                    points.append((ts, value))
        if points:
            series.append((entry.get("metric") or {}, sorted(points)))
    # Most extreme last value first: that is usually the series that fired.
    series.sort(key=lambda s: (-_sort_key(s[1][-1][1]), _labels(s[0])))
    return series


def chart_series(result: list[Any]) -> list[SeriesPoints]:
    """The first series with at most CHART_POINTS finite points each, for the page's chart."""
    out = []
    for metric, points in _parsed(result)[:MAX_SERIES]:
        finite = [(ts, v) for ts, v in points if math.isfinite(v)]
        stride = max(1, math.ceil(len(finite) / CHART_POINTS))
        out.append(SeriesPoints(labels=_labels(metric), points=finite[::stride]))
    return out


# A top-level comparison with a number at the end: `expr > 0.9`, `up == 0`, `x >= bool 5`.
_THRESHOLD = re.compile(r"(?:[<>]=?|[=!]=)\s*(?:bool\s+)?(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*$")


def threshold_of(promql: str) -> float | None:
    match = _THRESHOLD.search(promql.strip())
    return float(match[1]) if match else None


def _sort_key(value: float) -> float:
    return value if math.isfinite(value) else -math.inf

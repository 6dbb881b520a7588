"""The markdown report of an evaluation: a summary per engine, then every scenario's result."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from aiops_eval.runner import EngineReport, RunRecord


def _git(where: Path, *args: str) -> str | None:
    """A git command's output in ``where``, or None when git is missing or fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(where), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def analyzer_commit() -> str:
    """The checkout's commit (short, ``+changes`` if modified), or "unknown" outside git."""
    import aiops_analyzer

    where = Path(aiops_analyzer.__file__).parent
    commit = _git(where, "rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown"
    changed = _git(where, "status", "--porcelain", "--untracked-files=no")
    return f"{commit}+changes" if changed else commit


def _cell(text: str) -> str:
    """Table-safe text: pipes escaped, newlines flattened."""
    return text.replace("|", "\\|").replace("\n", " ")


def _engine_label(report: EngineReport) -> str:
    return f"{report.engine} ({report.model})" if report.model else report.engine


def summary_table(reports: list[EngineReport]) -> str:
    lines = [
        "| Engine | Pass rate | Runs | Scenarios | Judge | p50 latency | p95 latency "
        "| Tokens/analysis | Cost/analysis |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        passed = sum(r.passed for r in report.runs)
        judge = report.judge_pass_rate
        judge_text = f"{judge:.0%} ({report.judge_model})" if judge is not None else "not run"
        scenarios_passed, scenarios = report.folders_passed()
        lines.append(
            f"| {_engine_label(report)} | **{report.pass_rate:.1%}** | {passed}/{len(report.runs)}"
            f" | {scenarios_passed}/{scenarios} | {judge_text}"
            f" | {report.latency(0.50) * 1000:.0f} ms | {report.latency(0.95) * 1000:.0f} ms"
            f" | {report.tokens_per_analysis:.0f} | ${report.cost_per_analysis:.5f} |"
        )
    return "\n".join(lines)


def _failures(runs: list[RunRecord]) -> str:
    reasons: list[str] = []
    for run in runs:
        if run.error:
            reasons.append(f"error: {run.error}")
        reasons += [f"{c.name}: {c.detail}" for c in run.failed_checks]
    unique = list(dict.fromkeys(reasons))
    return "; ".join(unique) if unique else "-"


def scenario_table(report: EngineReport) -> str:
    lines = [
        "| Scenario | Expected | Answered | Passed | Judge | Failed checks |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in sorted(report.by_scenario().items()):
        answers = sorted({r.result.category for r in runs if r.result})
        verdicts = [r.verdict for r in runs if r.verdict is not None]
        judge = f"{sum(v.passed for v in verdicts)}/{len(verdicts)}" if verdicts else "-"
        lines.append(
            f"| {name} | {runs[0].expected_category} | {', '.join(answers) or '-'}"
            f" | {sum(r.passed for r in runs)}/{len(runs)} | {judge}"
            f" | {_cell(_failures(runs))} |"
        )
    return "\n".join(lines)


def _judge_notes(report: EngineReport) -> str:
    notes = [
        f"- {r.scenario} #{r.attempt}: {'pass' if r.verdict.passed else 'fail'} -- "
        f"{_cell(r.verdict.reasoning)}"
        for r in report.runs
        if r.verdict is not None
    ]
    return "\n".join(notes)


def _queries(report: EngineReport, attribute: str) -> str:
    seen: dict[str, set[str]] = {}
    for run in report.runs:
        for source, query in getattr(run, attribute):
            seen.setdefault(run.scenario, set()).add(f"{source}: `{_cell(query)}`")
    return "\n".join(
        f"- {name}: " + ", ".join(sorted(queries)) for name, queries in sorted(seen.items())
    )


def render(reports: list[EngineReport], *, scenarios_dir: str, repeat: int) -> str:
    """The whole report as markdown."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    count = len(reports[0].by_scenario()) if reports else 0
    folders = reports[0].folders_passed()[1] // repeat if reports else 0
    parts = [
        "# Evaluation report",
        "",
        f"{now}, analyzer commit {analyzer_commit()}; {count} alerts in {folders} scenarios "
        f"from `{scenarios_dir}`, {repeat} run(s) each. Runs count alerts (a grouped delivery "
        "has several); Scenarios count those whose every alert passed.",
        "",
        summary_table(reports),
    ]
    for report in reports:
        parts += ["", f"## {_engine_label(report)}", "", scenario_table(report)]
        notes = _judge_notes(report)
        if notes:
            parts += ["", "### Judge", "", notes]
        unused = _queries(report, "unused")
        if unused:
            parts += ["", "### Recorded evidence nobody asked for (stale scenario?)", "", unused]
        unanswered = _queries(report, "unanswered")
        if unanswered:
            parts += ["", "### Queries with no recording (answered empty)", "", unanswered]
    return "\n".join(parts) + "\n"

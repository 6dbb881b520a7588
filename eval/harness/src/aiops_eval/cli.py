"""``aiops-analyzer eval``: score an engine over the scenarios and write a markdown report.

Exit codes: 0 done (and at or above --fail-under), 1 a pass rate fell below --fail-under,
2 bad usage or configuration (the message names the option or setting).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, cast

from aiops_analyzer.core.config import Settings
from aiops_analyzer.schemas import EngineName
from pydantic import ValidationError

from aiops_eval.judge import Judge
from aiops_eval.report import render, summary_table
from aiops_eval.runner import EngineReport, run_engine
from aiops_eval.scenario import (
    Scenario,
    ScenarioError,
    default_scenarios_dir,
    load_scenarios,
)


def default_report(scenarios_dirs: list[Path]) -> Path:
    """Next to the scenarios, whatever the working directory: eval/scenarios ->
    eval/reports/scenarios.md; eval/holdout with eval/holdout-2 ->
    eval/reports/holdout+holdout-2.md."""
    folders = [d.resolve() for d in scenarios_dirs]
    return folders[0].parent / "reports" / ("+".join(f.name for f in folders) + ".md")


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..1 (0.8 means 80%)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiops-analyzer eval",
        description="Run the analyzer's engines over recorded alert scenarios and score them.",
    )
    parser.add_argument(
        "--engine",
        action="append",
        choices=["rules", "llm"],
        help="engine to evaluate; repeat for both (default: rules)",
    )
    parser.add_argument("--repeat", type=_positive, default=1, help="runs per scenario")
    parser.add_argument(
        "--scenarios",
        type=Path,
        action="append",
        help="folder of scenarios, or one scenario; repeat to score several sets as one "
        "(default: eval/scenarios)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="markdown report (default: reports/<scenarios folder>.md next to the scenarios)",
    )
    parser.add_argument(
        "--judge",
        action="store_true",
        help="also ask an LLM judge (needs AIOPS_OPENAI_API_KEY or OPENAI_API_KEY)",
    )
    parser.add_argument("--judge-model", default=None, help="judge model (default: llm_model)")
    parser.add_argument(
        "--fail-under", type=_rate, default=None, help="exit 1 if a pass rate is below RATE (0..1)"
    )
    return parser


def _error(message: str) -> int:
    print(f"aiops-analyzer eval: error: {message}", file=sys.stderr)
    return 2


def _judge_for(args: argparse.Namespace, settings: Settings) -> Judge | None:
    if not args.judge:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    return Judge(
        api_key=key,
        model=args.judge_model or settings.llm_model,
        base_url=settings.llm_base_url,
        timeout=settings.llm_timeout_seconds,
    )


async def _evaluate(
    args: argparse.Namespace,
    engines: list[EngineName],
    settings: Settings,
    scenarios: list[Scenario],
) -> list[EngineReport]:
    judge = _judge_for(args, settings)
    try:
        return [
            await run_engine(
                scenarios, engine=engine, base=settings, repeat=args.repeat, judge=judge
            )
            for engine in engines
        ]
    finally:
        if judge is not None:
            await judge.close()


def _display(path: Path) -> str:
    """The path relative to the working directory when it is below it (reports get committed)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message naming the option
        return 0 if exc.code == 0 else 2
    engines = cast(list[EngineName], list(dict.fromkeys(args.engine or ["rules"])))
    try:
        # The evaluation serves no webhook: the token requirement does not apply.
        overrides: dict[str, Any] = {"auth_disabled": True}
        settings = Settings(**overrides)
    except ValidationError as exc:
        return _error(f"invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
    has_key = bool(settings.openai_api_key and settings.openai_api_key.get_secret_value())
    if "llm" in engines and not (has_key or settings.llm_base_url):
        return _error(
            "--engine llm needs AIOPS_OPENAI_API_KEY (or OPENAI_API_KEY), "
            "or AIOPS_LLM_BASE_URL for a server without keys"
        )
    if args.judge and not has_key:
        return _error("--judge needs AIOPS_OPENAI_API_KEY (or OPENAI_API_KEY)")
    folders: list[Path] = args.scenarios or [default_scenarios_dir()]
    try:
        scenarios = [case for folder in folders for case in load_scenarios(folder)]
    except ScenarioError as exc:
        return _error(str(exc))
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        return _error("--scenarios: two scenarios share a name; score those sets separately")

    reports = asyncio.run(_evaluate(args, engines, settings, scenarios))
    scenarios_dir = ", ".join(_display(folder) for folder in folders)
    report_path = args.report or default_report(folders)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(
        render(reports, scenarios_dir=scenarios_dir, repeat=args.repeat), encoding="utf-8"
    )
    print(summary_table(reports))
    print(f"report written to {_display(report_path)}")
    below = [r for r in reports if args.fail_under is not None and r.pass_rate < args.fail_under]
    for report in below:
        print(
            f"{report.engine}: pass rate {report.pass_rate:.1%} is below --fail-under "
            f"{args.fail_under:.1%}",
            file=sys.stderr,
        )
    return 1 if below else 0

"""Run an engine over scenarios through the analyzer's real evidence clients and engines.

For each scenario the replay server is loaded with its recorded evidence - or, for a world
scenario, a real Prometheus is started over the world's series and the replay server answers
Loki from its streams - ``gather_evidence`` queries them exactly as it queries Prometheus and
Loki in production, ``engines.analyze`` answers (the llm engine through the prompt recorder),
and the answer is scored. Each alert of a grouped delivery is one case, analysed and scored on
its own against the same world.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiops_analyzer.core.config import Settings
from aiops_analyzer.schemas import AnalysisResult, EngineName, EvidenceItem

from aiops_eval.judge import Judge, Verdict
from aiops_eval.prompt_recorder import PromptRecorder
from aiops_eval.recorded import EvidenceBook
from aiops_eval.replay import ReplayServer
from aiops_eval.scenario import Scenario
from aiops_eval.scoring import Check, score
from aiops_eval.world_replay import WorldLogs, WorldPrometheus


@dataclass
class RunRecord:
    """One analysis of one scenario and how it scored."""

    scenario: str
    expected_category: str
    attempt: int
    seconds: float
    result: AnalysisResult | None = None
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    verdict: Verdict | None = None
    unanswered: list[tuple[str, str]] = field(default_factory=list)
    unused: list[tuple[str, str]] = field(default_factory=list)
    folder: str = ""

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values): p50 of 1..10 is 5, p95 is 10."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class EngineReport:
    """Every run of one engine over the scenarios, with the summary numbers."""

    engine: EngineName
    model: str | None
    runs: list[RunRecord]
    judge_model: str | None = None

    @property
    def pass_rate(self) -> float:
        return sum(r.passed for r in self.runs) / len(self.runs) if self.runs else 0.0

    @property
    def judge_pass_rate(self) -> float | None:
        judged = [r.verdict for r in self.runs if r.verdict is not None]
        return sum(v.passed for v in judged) / len(judged) if judged else None

    def latency(self, fraction: float) -> float:
        return percentile([r.seconds for r in self.runs], fraction)

    def _answered(self) -> list[AnalysisResult]:
        return [r.result for r in self.runs if r.result is not None]

    @property
    def tokens_per_analysis(self) -> float:
        answered = self._answered()
        total = sum(a.prompt_tokens + a.completion_tokens for a in answered)
        return total / len(answered) if answered else 0.0

    @property
    def cost_per_analysis(self) -> float:
        answered = self._answered()
        return sum(a.cost_usd for a in answered) / len(answered) if answered else 0.0

    def folders_passed(self) -> tuple[int, int]:
        """(passed, total) scenario folders per attempt: a grouped delivery passes only when
        every one of its alerts does."""
        folders: dict[tuple[int, str], bool] = {}
        for run in self.runs:
            key = (run.attempt, run.folder or run.scenario)
            folders[key] = folders.get(key, True) and run.passed
        return sum(folders.values()), len(folders)

    def by_scenario(self) -> dict[str, list[RunRecord]]:
        grouped: dict[str, list[RunRecord]] = {}
        for run in self.runs:
            grouped.setdefault(run.scenario, []).append(run)
        return grouped


def evaluation_settings(
    base: Settings, *, engine: EngineName, replay_url: str, llm_url: str | None
) -> Settings:
    """``base`` pointed at the loopback servers, with the engine forced."""
    update: dict[str, object] = {
        "engine": engine,
        "auth_disabled": True,
        "prometheus_url": replay_url,
        "loki_url": replay_url,
    }
    if llm_url is not None:
        update["llm_base_url"] = llm_url
    return base.model_copy(update=update)


def _load_pipeline() -> None:
    """Import the pipeline (OpenAI SDK included) before the clock runs for the first scenario.

    Imported lazily so that loading scenarios or scoring works without the pipeline's
    dependencies; importing it inside the first timed run added ~1 s to its latency.
    """
    import aiops_analyzer.engines
    import aiops_analyzer.evidence  # noqa: F401


async def _analyze_once(
    scenario: Scenario, settings: Settings
) -> tuple[list[EvidenceItem], AnalysisResult]:
    from aiops_analyzer.engines import analyze
    from aiops_analyzer.evidence import gather_evidence

    evidence = await gather_evidence(scenario.alert, settings)
    result = await analyze(scenario.alert, evidence, settings)
    return evidence, result


async def run_engine(
    scenarios: list[Scenario],
    *,
    engine: EngineName,
    base: Settings,
    repeat: int = 1,
    judge: Judge | None = None,
) -> EngineReport:
    """Analyse every scenario ``repeat`` times with ``engine`` and score each answer.

    For ``llm`` the engine talks to the prompt recorder, which forwards to ``base.llm_base_url``
    (or api.openai.com).
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    _load_pipeline()
    runs: list[RunRecord] = []
    recorder = PromptRecorder(base.llm_base_url, timeout=base.llm_timeout_seconds + 5)
    with ReplayServer() as replay, recorder:
        settings = evaluation_settings(
            base,
            engine=engine,
            replay_url=replay.url,
            llm_url=recorder.url if engine == "llm" else None,
        )
        for attempt in range(1, repeat + 1):
            with _WorldStage(replay.url) as stage:
                for recorded in scenarios:
                    recorder.clear()
                    if recorded.world is not None:
                        scenario, world_settings, logs = stage.enter(recorded, settings)
                        replay.use_world(logs)
                        asked_before = len(logs.unsupported)
                        runs.append(
                            await _run_one(
                                scenario, attempt, world_settings, engine, recorder, judge
                            )
                        )
                        runs[-1].unanswered = [
                            ("loki", f"{query} (stand-in: {why})")
                            for query, why in logs.unsupported[asked_before:]
                        ]
                    else:
                        now = datetime.now(UTC)
                        scenario = recorded.replayed_at(now)
                        book = EvidenceBook(
                            scenario.evidence, now.timestamp(), scenario.shift_seconds
                        )
                        replay.use(book)
                        runs.append(
                            await _run_one(scenario, attempt, settings, engine, recorder, judge)
                        )
                        runs[-1].unanswered = list(book.unanswered)
                        runs[-1].unused = book.unused()
                    runs[-1].folder = recorded.folder
        replay.use(None)
    return EngineReport(
        engine=engine,
        model=base.llm_model if engine == "llm" else None,
        runs=runs,
        judge_model=judge.model if judge else None,
    )


class _WorldStage:
    """The running Prometheus and Loki answers of the world being replayed.

    Consecutive cases of one folder (a grouped delivery) share them; the next folder stops
    the previous Prometheus first. The delivery is placed at the moment the world is staged.
    """

    def __init__(self, replay_url: str) -> None:
        self.replay_url = replay_url
        self.path: object = None
        self.prometheus: WorldPrometheus | None = None
        self.logs: WorldLogs | None = None
        self.delivered = datetime.now(UTC)

    def enter(self, recorded: Scenario, settings: Settings) -> tuple[Scenario, Settings, WorldLogs]:
        assert recorded.world is not None
        if self.path != recorded.path or self.logs is None:
            self.close()
            self.delivered = datetime.now(UTC)
            delivered = self.delivered.timestamp()
            if "prometheus" not in recorded.world.unavailable:
                self.prometheus = WorldPrometheus(recorded.world, delivered).start()
            self.logs = WorldLogs(recorded.world, delivered)
            self.path = recorded.path
        url = self.prometheus.url if self.prometheus else self.replay_url
        return (
            recorded.replayed_at(self.delivered),
            settings.model_copy(update={"prometheus_url": url}),
            self.logs,
        )

    def close(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        self.prometheus, self.logs, self.path = None, None, None

    def __enter__(self) -> _WorldStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _run_one(
    scenario: Scenario,
    attempt: int,
    settings: Settings,
    engine: EngineName,
    recorder: PromptRecorder,
    judge: Judge | None,
) -> RunRecord:
    category = scenario.expected.category_text
    started = time.perf_counter()
    try:
        evidence, result = await _analyze_once(scenario, settings)
    except Exception as exc:  # the contract says never raise; a breach is scored, not fatal
        seconds = time.perf_counter() - started
        error = f"{type(exc).__name__}: {exc}"[:300]
        for secret in scenario.expected.secrets:  # the report must not carry them either
            error = error.replace(secret, "[SECRET]")
        return RunRecord(scenario.name, category, attempt, seconds, error=error)
    seconds = time.perf_counter() - started
    prompts = recorder.prompt_texts() + recorder.bodies()
    checks = score(result, scenario.expected, engine=engine, evidence=evidence, prompts=prompts)
    verdict = await judge.verdict(scenario.expected, result) if judge else None
    return RunRecord(scenario.name, category, attempt, seconds, result, checks, verdict=verdict)

"""`make demo`: the analyzer as a real process, offline, fed recorded incidents.

Starts loopback stand-ins of Prometheus and Loki that replay the recordings in
service/samples/recordings (demo_sources.py), then `aiops-analyzer serve` on a free 127.0.0.1
port with a temporary store and the rules engine, pointed at them. Posts service/samples/*.json
through the real webhook with their times moved to now (plus one resend, as the second member
of an Alertmanager HA pair would), waits for the analyses, prints them with the evidence they
cite, and stops the process by its PID.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiops_analyzer.console import analysis_lines, heading
from analyzer_process import ANALYZER_COMMAND, analyzer_env, free_port, running
from demo_sources import RECORDINGS, replaying

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "service" / "samples"
WAIT_SECONDS = 60.0
RECORDED_AT = json.loads((RECORDINGS / "evidence.json").read_text())["recorded_at"]


def post(client: httpx.Client, name: str, body: dict[str, Any], note: str = "") -> list[int]:
    response = client.post("/webhook/alertmanager", json=body)
    accepted = response.json()
    if response.status_code != 202:
        raise RuntimeError(f"{name}: HTTP {response.status_code}: {accepted}")
    print(
        f"  POST {name}{note}: {response.status_code}, analyses {accepted['analysis_ids']}, "
        f"new {accepted['new']}, duplicates {accepted['duplicates']}"
    )
    ids: list[int] = accepted["analysis_ids"]
    return ids


def wait_done(client: httpx.Client, ids: list[int]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        analyses = [client.get(f"/analyses/{i}").json() for i in sorted(set(ids))]
        if all(a["job"]["state"] in {"done", "failed"} for a in analyses):
            return analyses
        if time.monotonic() > deadline:
            raise RuntimeError(f"analyses not finished within {WAIT_SECONDS:.0f} s")
        time.sleep(0.2)


def show(analysis: dict[str, Any]) -> None:
    lines = heading(
        f"#{analysis['id']} {analysis['alertname']}",
        analysis["status"],
        analysis["labels"],
        f"{analysis['starts_at']}  (deliveries: {analysis['deliveries']})",
    )
    print("\n".join(lines))
    if analysis["job"]["state"] == "failed":
        print(f"  FAILED: {analysis['job']['last_error']}")
        return
    resolution = analysis.get("resolution")
    if resolution:
        minutes = (resolution["duration_seconds"] or 0) / 60
        firing_id = resolution["firing_analysis_id"]
        print(
            f"  Resolved after {minutes:.1f} min; closes analysis #{firing_id}"
            " (no engine call for a resolution by default)."
        )
        return
    print("\n".join(analysis_lines(analysis["result"], analysis["evidence"])))


def to_datetime(text: str) -> datetime:
    # Alertmanager writes nanoseconds; Python keeps microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def moved(payload: dict[str, Any], shift: timedelta, now: datetime) -> dict[str, Any]:
    """The payload as if its incident were happening now, like the recordings (see
    demo_sources): every time moves by `shift`; a resolution does not end in the future."""
    for alert in payload["alerts"]:
        starts = to_datetime(alert["startsAt"]) + shift
        alert["startsAt"] = starts.isoformat().replace("+00:00", "Z")
        if not alert["endsAt"].startswith("0001"):
            ends = min(to_datetime(alert["endsAt"]) + shift, now)
            alert["endsAt"] = ends.isoformat().replace("+00:00", "Z")
    return payload


def replay(
    client: httpx.Client, firing: list[Path], resolved: list[Path], shift: timedelta, now: datetime
) -> int:
    def load(path: Path) -> dict[str, Any]:
        return moved(json.loads(path.read_text()), shift, now)

    print("demo: replaying Alertmanager payloads through POST /webhook/alertmanager")
    ids: list[int] = []
    for path in firing:
        ids += post(client, path.name, load(path))
    # An Alertmanager HA pair delivers every notification twice.
    ids += post(client, firing[0].name, load(firing[0]), note=" again (HA pair resend)")
    analyses = wait_done(client, ids)
    for path in resolved:
        resolved_ids = post(client, path.name, load(path))
        analyses += wait_done(client, resolved_ids)
    for analysis in analyses:
        show(analysis)
    failed = [a["id"] for a in analyses if a["job"]["state"] != "done"]
    print(
        f"\ndemo: {len(analyses)} analyses from {len(ids) + len(resolved)} deliveries "
        f"({len(failed)} failed)."
    )
    return 1 if failed else 0


NEXT_STEPS = """
Next: run the analyzer yourself, then open http://127.0.0.1:8080/docs
  export AIOPS_WEBHOOK_TOKEN=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(24))')
  .venv/bin/aiops-analyzer serve --port 8080
and in a second terminal, with the same AIOPS_WEBHOOK_TOKEN:
  curl -H "Authorization: Bearer $AIOPS_WEBHOOK_TOKEN" -H 'Content-Type: application/json' \\
       -d @service/samples/01-nginx-down-firing.json http://127.0.0.1:8080/webhook/alertmanager
Analyze a payload without a server:
  .venv/bin/aiops-analyzer analyze service/samples/02-container-crashloop-firing.json
The whole platform on Docker: make up (see docs/getting-started.md)."""


def main() -> int:
    samples = sorted(SAMPLES.glob("*.json"))
    if not samples:
        print(f"demo: no sample payloads in {SAMPLES}", file=sys.stderr)
        return 1
    firing = [p for p in samples if "resolved" not in p.name]
    resolved = [p for p in samples if "resolved" in p.name]
    token = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    with (
        tempfile.TemporaryDirectory(prefix="aiops-demo-") as tmp,
        replaying(now.timestamp()) as (sources_url, queries),
    ):
        data_dir = Path(tmp)
        port = free_port()
        log = data_dir / "analyzer.log"
        # Recorded Prometheus and Loki data, replayed as if the incidents were happening now.
        env = analyzer_env(
            data_dir, port, token, AIOPS_PROMETHEUS_URL=sources_url, AIOPS_LOKI_URL=sources_url
        )
        shift = now - datetime.fromisoformat(RECORDED_AT.replace("Z", "+00:00"))
        try:
            with running(
                "the analyzer", ANALYZER_COMMAND, env, port, log, ready_path="/readyz", cwd=data_dir
            ) as analyzer:
                print(
                    f"demo: analyzer ready (pid {analyzer.proc.pid}) on {analyzer.url}, store {tmp}"
                    f"\ndemo: Prometheus and Loki replayed from {RECORDINGS.relative_to(REPO)}"
                )
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(base_url=analyzer.url, headers=headers, timeout=10) as client:
                    status = replay(client, firing, resolved, shift, now)
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            return 1
        finally:
            print(f"demo: analyzer stopped ({len(queries)} evidence queries answered)")
    if status == 0:
        print(NEXT_STEPS)
    return status


if __name__ == "__main__":
    raise SystemExit(main())

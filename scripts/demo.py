"""`make demo`: the analyzer as a real process, offline, fed the bundled Alertmanager payloads.

Starts `aiops-analyzer serve` on a free 127.0.0.1 port with a temporary store and the rules
engine, posts service/samples/*.json through the real webhook (plus one resend, as the second
member of an Alertmanager HA pair would), waits for the analyses, prints them, and stops the
process by its PID.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from aiops_analyzer.console import analysis_lines, heading
from analyzer_process import ANALYZER_COMMAND, analyzer_env, free_port, running

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "service" / "samples"
WAIT_SECONDS = 60.0


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


def replay(client: httpx.Client, firing: list[Path], resolved: list[Path]) -> int:
    print("demo: replaying Alertmanager payloads through POST /webhook/alertmanager")
    ids: list[int] = []
    for path in firing:
        ids += post(client, path.name, json.loads(path.read_text()))
    # An Alertmanager HA pair delivers every notification twice.
    ids += post(
        client,
        firing[0].name,
        json.loads(firing[0].read_text()),
        note=" again (HA pair resend)",
    )
    analyses = wait_done(client, ids)
    for path in resolved:
        resolved_ids = post(client, path.name, json.loads(path.read_text()))
        analyses += wait_done(client, resolved_ids)
    for analysis in analyses:
        show(analysis)
    failed = [a["id"] for a in analyses if a["job"]["state"] != "done"]
    print(
        f"\ndemo: {len(analyses)} analyses from {len(ids) + len(resolved)} "
        f"deliveries ({len(failed)} failed). Run `aiops-analyzer serve` yourself "
        "and open /docs to explore the API."
    )
    return 1 if failed else 0


def main() -> int:
    samples = sorted(SAMPLES.glob("*.json"))
    if not samples:
        print(f"demo: no sample payloads in {SAMPLES}", file=sys.stderr)
        return 1
    firing = [p for p in samples if "resolved" not in p.name]
    resolved = [p for p in samples if "resolved" in p.name]
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="aiops-demo-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        log = data_dir / "analyzer.log"
        try:
            with running(
                "the analyzer",
                ANALYZER_COMMAND,
                analyzer_env(data_dir, port, token),
                port,
                log,
                ready_path="/readyz",
                cwd=data_dir,
            ) as analyzer:
                print(
                    f"demo: analyzer ready (pid {analyzer.proc.pid}) on {analyzer.url}, store {tmp}"
                )
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(base_url=analyzer.url, headers=headers, timeout=10) as client:
                    return replay(client, firing, resolved)
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            return 1
        finally:
            print("demo: analyzer stopped")


if __name__ == "__main__":
    raise SystemExit(main())

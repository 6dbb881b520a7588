"""`make demo`: the analyzer as a real process, offline, fed the bundled Alertmanager payloads.

Starts `aiops-analyzer serve` on a free 127.0.0.1 port with a temporary store and the rules
engine, posts service/samples/*.json through the real webhook (plus one resend, as the second
member of an Alertmanager HA pair would), waits for the analyses, prints them, and stops the
process by its PID.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "service" / "samples"
WAIT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_analyzer(data_dir: Path, port: int, token: str) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIOPS_") and k not in {"OPENAI_API_KEY", "PORT"}
    }
    env.update(
        AIOPS_WEBHOOK_TOKEN=token,
        AIOPS_HOST="127.0.0.1",
        AIOPS_PORT=str(port),
        AIOPS_DATA_DIR=str(data_dir),
        AIOPS_ENGINE="rules",  # Offline: no API key, no network.
    )
    log = (data_dir / "analyzer.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "aiops_analyzer.cli", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
    )


def wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the analyzer exited during start")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the analyzer did not become ready within 30 s")


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


def wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(
        " ".join(text.split()),
        width=96,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def show(analysis: dict[str, Any]) -> None:
    labels = analysis["labels"]
    header = f"#{analysis['id']} {analysis['alertname']} [{analysis['status']}]"
    where = labels.get("name") or labels.get("instance") or labels.get("job") or ""
    print("\n" + "=" * 100)
    print(
        f"{header}  {where}  since {analysis['starts_at']}  (deliveries: {analysis['deliveries']})"
    )
    print("=" * 100)
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
    result = analysis["result"]
    print(
        f"  Severity: {result['severity']}   Category: {result['category']}   "
        f"Engine: {result['engine']}   Latency: {result['latency_ms']:.0f} ms"
        + ("   INCONCLUSIVE" if result["inconclusive"] else "")
    )
    print("  Summary:")
    print(wrap(result["summary"]))
    evidence = {item["id"]: item for item in analysis["evidence"]}
    if result["probable_causes"]:
        print("  Probable causes:")
        for number, cause in enumerate(result["probable_causes"], 1):
            cited = ", ".join(cause["evidence_ids"]) or "no evidence cited"
            print(wrap(f"{number}. {cause['cause']} (confidence {cause['confidence']:.0%})"))
            print(f"       evidence: {cited}")
    if evidence:
        print("  Evidence:")
        for item in evidence.values():
            text = item["text"] or item["detail"]
            first = " ".join(text.split())[:140]
            print(f"    [{item['id']}] {item['source']} ({item['status']}): {first}")
    if result["remediation"]:
        print("  Remediation:")
        for step in result["remediation"]:
            print(wrap(f"- {step}", indent="    "))
    if result["runbook_urls"]:
        print("  Runbooks:")
        for url in result["runbook_urls"]:
            print(f"    {url}")


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
        proc = start_analyzer(data_dir, port, token)
        print(f"demo: analyzer started (pid {proc.pid}) on http://127.0.0.1:{port}, store {tmp}")
        try:
            headers = {"Authorization": f"Bearer {token}"}
            base_url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
                wait_ready(client, proc)
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
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            print((data_dir / "analyzer.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            return 1
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            print(f"demo: analyzer (pid {proc.pid}) stopped")


if __name__ == "__main__":
    raise SystemExit(main())

"""`make demo` (scripts/demo.py) works end to end: real process, real webhook, offline."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.service.apptools import REPO


def test_demo_replays_the_samples_and_prints_the_analyses() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPS_")}
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env=env,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for alertname in ("NginxDown", "ContainerRestarting", "HighMemoryUsage"):
        assert f"{alertname} [firing]" in out
    assert "again (HA pair resend): 202" in out and "new 0, duplicates 1" in out
    assert "NginxDown [resolved]" in out and "closes analysis #1" in out
    for heading in ("Summary:", "Probable causes:", "Evidence:", "Remediation:", "Runbooks:"):
        assert heading in out
    assert "Engine: rules" in out  # Offline: no key, no network.
    # Offline the bundled runbook is the only evidence read, and the causes cite it.
    assert "evidence: runbook-1" in out and "no evidence cited" not in out
    assert "s3cr3t-pass" not in out  # The sample's password is masked before it is stored.
    assert "(0 failed)" in out and "stopped" in out

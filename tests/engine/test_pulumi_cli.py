"""scripts/pulumi-cli.sh: the one place the CLI's version is pinned; a `pulumi` of exactly that
version on PATH is used as it is, any other version is not, and without Go the script says
what it needs instead of failing obscurely. (The Go build itself is what `make test` runs on a
fresh machine; these tests never start it: no `go` is on their PATH.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.engine.offline import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "pulumi-cli.sh"


def _docker_build_pin() -> str:
    [line] = [x for x in SCRIPT.read_text().splitlines() if x.startswith("DOCKER_BUILD_VERSION=")]
    return line.partition("=")[2]


def _pinned() -> str:
    out = subprocess.run([str(SCRIPT), "--version"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, Path]:
    """A fake home with docker-build already installed by `pulumi plugin install`, a fake
    `pulumi` on PATH, and a cache directory; PATH has no Go."""
    home = tmp_path / "home"
    plugin = home / ".pulumi" / "plugins" / f"resource-docker-build-v{_docker_build_pin()}"
    plugin.mkdir(parents=True)
    (plugin / "pulumi-resource-docker-build").write_text("#!/bin/sh\n")
    (plugin / "pulumi-resource-docker-build").chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {"home": home, "bin": bin_dir, "cache": tmp_path / "cache"}


def _fake_pulumi(bin_dir: Path, version: str) -> Path:
    path = bin_dir / "pulumi"
    path.write_text(f'#!/bin/sh\n[ "$1" = version ] && echo "v{version}"\n')
    path.chmod(0o755)
    return path


def _run(machine: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{machine['bin']}:/usr/bin:/bin",
        "HOME": str(machine["home"]),
        "AIOPS_PULUMI_CACHE": str(machine["cache"]),
    }
    if "LANG" in os.environ:
        env["LANG"] = os.environ["LANG"]
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_the_version_is_pinned_once_and_documented() -> None:
    version = _pinned()
    assert version.count(".") == 2
    assert f"v{version}" in (REPO_ROOT / "docs" / "ci.md").read_text()
    assert f"v{version}" in (REPO_ROOT / "README.md").read_text()


def test_a_pulumi_of_the_pinned_version_on_path_is_used(machine: dict[str, Path]) -> None:
    fake = _fake_pulumi(machine["bin"], _pinned())
    result = _run(machine)
    assert result.returncode == 0, result.stderr
    cache = Path(result.stdout.strip())
    assert cache == machine["cache"] / f"v{_pinned()}"
    assert (cache / "bin" / "pulumi").resolve() == fake.resolve()
    assert (cache / "plugins" / "pulumi-resource-docker-build").exists()
    assert "using" in result.stderr


def test_another_version_on_path_is_not_used_and_go_is_asked_for(
    machine: dict[str, Path],
) -> None:
    _fake_pulumi(machine["bin"], "3.100.0")
    result = _run(machine)
    assert result.returncode == 1
    assert "Go is needed to build Pulumi" in result.stderr
    assert not (machine["cache"] / f"v{_pinned()}" / "bin" / "pulumi").exists()

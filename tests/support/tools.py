"""External executables the tests rely on (promtool, amtool, nginx...).

Without the tool a test skips with a message naming it; under ``CI=true`` it fails instead,
because `make test` installs every tool and a skip there would hide a broken install.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Debian installs some daemons outside PATH for ordinary users; look there too.
_EXTRA_DIRS = ("/usr/sbin", "/usr/bin", "/sbin")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in _EXTRA_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_tool(name: str, hint: str = "") -> str:
    """Return the tool's path, or skip (fail under CI) naming the missing tool."""
    path = find_tool(name)
    if path:
        return path
    message = f"required tool {name!r} not found" + (f" ({hint})" if hint else "")
    if in_ci():
        pytest.fail(message + "; `make test` should have installed it")
    pytest.skip(message)

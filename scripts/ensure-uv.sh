#!/usr/bin/env bash
# Prints the command that runs uv, installing uv first if the machine has none.
#
# Order: a `uv` on PATH (Homebrew, pipx, the standalone installer), then `$PYTHON -m uv`
# (pyenv or a virtualenv that has it), then a private copy in .cache/uv-bootstrap made with
# `$PYTHON -m venv`. The last works with interpreters that refuse pip installs (PEP 668,
# "externally-managed-environment": Debian, Ubuntu, Homebrew), because it never installs into
# the interpreter itself. All messages go to stderr; stdout is only the command.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
UV_VERSION="${UV_VERSION:?UV_VERSION must be set (the Makefile does)}"
ROOT="$(cd "${BASH_SOURCE[0]%/*}/.." && pwd)"
BOOTSTRAP="${UV_BOOTSTRAP_DIR:-$ROOT/.cache/uv-bootstrap}"

if command -v uv >/dev/null 2>&1; then
  command -v uv
  exit 0
fi
if "$PYTHON" -m uv --version >/dev/null 2>&1; then
  echo "$PYTHON -m uv"
  exit 0
fi
if [ -x "$BOOTSTRAP/bin/uv" ]; then
  echo "$BOOTSTRAP/bin/uv"
  exit 0
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "make: $PYTHON not found: install Python 3.11 or newer, or run make PYTHON=/path/to/python3" >&2
  exit 1
fi
echo "make: uv not found; installing uv $UV_VERSION into ${BOOTSTRAP#"$ROOT"/} (once)" >&2
if ! "$PYTHON" -m venv "$BOOTSTRAP" >/dev/null 2>&1; then
  rm -rf "$BOOTSTRAP"
  echo "make: '$PYTHON -m venv' failed. On Debian or Ubuntu install the venv module:" \
    "sudo apt-get install python3-venv (or install uv: https://docs.astral.sh/uv/)" >&2
  exit 1
fi
if ! "$BOOTSTRAP/bin/python" -m pip install --quiet --disable-pip-version-check \
  "uv==$UV_VERSION" >&2; then
  rm -rf "$BOOTSTRAP"
  echo "make: could not install uv $UV_VERSION with pip (network or proxy?)" >&2
  exit 1
fi
echo "$BOOTSTRAP/bin/uv"

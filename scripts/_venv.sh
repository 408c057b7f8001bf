#!/usr/bin/env bash
# Shared by scripts/demo and scripts/test: install mailgate into .venv from the lock file.
#
# Exact versions come from uv.lock (`uv sync --locked` refuses a lock that no longer matches
# pyproject.toml), so a registry's new release cannot change what a fresh clone runs. uv itself
# is pinned, with hashes, in scripts/uv-requirements.txt and installed into .uv/ by the pip that
# ships with Python: nothing here upgrades an installer to "latest".
#   MAILGATE_EXTRAS=test   also install the test tools (scripts/test sets it)
#   MAILGATE_UV_ONLY=1     only install the pinned uv into .uv/ (scripts/lock)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mailgate needs Python 3.11 or newer as '$PY' (set PYTHON=...)." >&2
  exit 2
fi

make_venv() {  # make_venv DIR: a virtual environment of $PY, with Debian's python3-venv if need be
  if "$PY" -m venv "$1" 2>/dev/null; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$1" && "$PY" -m venv "$1" && return 0
  fi
  echo "python3 -m venv failed: install Debian's python3-venv (sudo apt-get install python3-venv)." >&2
  exit 2
}

uv_wanted="$(sed -n 's/^uv==\([^ ]*\).*/\1/p' scripts/uv-requirements.txt)"
if ! .uv/bin/uv --version 2>/dev/null | grep -qx "uv ${uv_wanted}\( .*\)\?"; then
  rm -rf .uv && make_venv .uv
  .uv/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
    -r scripts/uv-requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
  .uv/bin/uv --version >/dev/null 2>&1 || { echo "installing uv ${uv_wanted} failed" >&2; exit 1; }
fi
[ "${MAILGATE_UV_ONLY:-}" = 1 ] && exit 0  # scripts/lock needs only the installer

extras=()
[ -n "${MAILGATE_EXTRAS:-}" ] && extras=(--extra "$MAILGATE_EXTRAS")
# The demo needs only mailgate's own dependencies: --inexact leaves test tools installed by an
# earlier ./scripts/test in place instead of removing them; the test run syncs exactly.
[ -z "${MAILGATE_EXTRAS:-}" ] && extras=(--inexact)
UV_PROJECT_ENVIRONMENT=.venv UV_PYTHON_DOWNLOADS=never \
  .uv/bin/uv sync --locked --quiet --python "$PY" "${extras[@]}" || {
    echo "installing mailgate from uv.lock failed (if pyproject.toml changed, run scripts/lock)" >&2
    exit 1
  }
# A pip install before uv.lock existed left metadata listing old module paths: not ours now.
rm -rf src/mailgate.egg-info
# An editable install leaves mailgate's own modules uncompiled, and with PYTHONDONTWRITEBYTECODE
# set every CLI start would compile them again: ~0.4 s a run.
.venv/bin/python -m compileall -q src >/dev/null
.venv/bin/python -c 'import mailgate' || { echo "installing mailgate failed" >&2; exit 1; }

#!/usr/bin/env bash
# Shared by scripts/demo and scripts/test: make .venv (Python >= 3.11) and install mailgate into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mailgate needs Python 3.11 or newer as '$PY' (set PYTHON=...)." >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian ships venv separately; install it when we may.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf .venv && "$PY" -m venv .venv
    else
      echo "python3 -m venv failed: install Debian's python3-venv (sudo apt-get install python3-venv)." >&2
      exit 2
    fi
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${MAILGATE_EXTRAS:-}]" 2>&1 \
  | grep -v '^WARNING: Location' || true
# An editable install leaves mailgate's own modules uncompiled (pip compiles only what it copies),
# and with PYTHONDONTWRITEBYTECODE set every CLI start would compile them again: ~0.4 s a run.
.venv/bin/python -m compileall -q src >/dev/null
.venv/bin/python -c 'import mailgate' || { echo "installing mailgate failed" >&2; exit 1; }

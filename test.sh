#!/usr/bin/env bash
# Runs the whole test suite: lint, format check, strict types, then pytest —
# unit tests on SQLite and PostgreSQL, the end-to-end suite against a real
# Label Studio (installed into its own cached virtualenv on first use), the
# contract fuzzer and the browser tests. Arguments go to pytest, e.g.
#   ./test.sh -m "not e2e and not browser"     the quick unit tests only
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c requirements.lock -e '.[dev]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

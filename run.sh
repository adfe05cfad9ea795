#!/usr/bin/env bash
# Runs the labelhub daemon from this checkout: creates .venv on first use,
# installs the pinned dependencies, then `labelhub serve "$@"`.
# With nothing configured it serves on http://127.0.0.1:8000 with ./labelhub.db.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c requirements.lock -e .
exec .venv/bin/labelhub serve "$@"

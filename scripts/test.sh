#!/usr/bin/env bash
# The whole suite: lint, types, then unit + integration tests against real Postgres and Dovecot.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
unset PYTHONDONTWRITEBYTECODE
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest --durations=10 "$@"

#!/usr/bin/env bash
# make compat: the provider against each older supported Airflow minor (latest patch), each in a venv
# of its own under .compat/ (CI runs the newest, 3.3, through the whole suite). Per version: Airflow,
# the runtime requirements (requirements.in), this package (editable, no dependencies: its own bounds
# are what is being proven), the test tools; then the provider, DAG-building, dag.test poll/import,
# backfill, push, idle-check and plugin tests against real Postgres, Dovecot and Airflow components.
#
#   bash scripts/compat.sh            # every version in COMPAT_VERSIONS
#   COMPAT_VERSIONS=3.2.2 bash scripts/compat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH" PYTHONPATH="$PWD"
unset PYTHONDONTWRITEBYTECODE
bash scripts/bootstrap.sh >/dev/null  # uv and the Debian packages (Postgres, Dovecot, Redis)

VERSIONS=${COMPAT_VERSIONS:-3.2.2}
# Airflow's constraints files (not reachable from here) pin what each release was tested with; where a
# newer release of a dependency breaks an older Airflow, the pin is here, with what it breaks (Airflow
# 3.2.2's dag.test, found by this script):
#   svcs 26 changed its FastAPI lifespan: "'State' object has no attribute 'svcs_registry'";
#   the newest cadwyn/fastapi/pydantic: "Model 'TITerminalStatePayload' needs a discriminator field";
#   held at the versions the 3.3 lock (requirements-dev.txt) resolved.
declare -A PINS=(["3.2"]="svcs<26 cadwyn==7.0.0 fastapi==0.136.3 pydantic==2.14.3")
TESTS=(tests/test_dags.py tests/test_plugins_folder.py tests/operators tests/test_backfill.py tests/test_push.py
       tests/test_run_state.py "tests/test_astro.py::test_provider_identity_matches_pyproject_and_provider_info")

status=0
for version in $VERSIONS; do
  minor=${version%.*}
  venv=.compat/airflow-$version
  started=$(date +%s)
  echo "== Airflow $version: $venv"
  [ -x "$venv/bin/python" ] || uv venv -q --python 3.11 "$venv"
  VIRTUAL_ENV=$venv uv pip install -q "apache-airflow==$version" -r requirements.in pytest pytest-timeout hypothesis psutil \
    ${PINS[$minor]:-}
  VIRTUAL_ENV=$venv uv pip install -q --no-deps -e .
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"; then
    echo "== Airflow $version: PASS in $(( $(date +%s) - started )) s"
  else
    echo "== Airflow $version: FAIL after $(( $(date +%s) - started )) s"
    status=1
  fi
done
exit $status

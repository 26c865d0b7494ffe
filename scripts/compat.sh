#!/usr/bin/env bash
# make compat: the provider against each older supported Airflow minor (latest patch), each in a venv
# of its own under .compat/ (CI runs the newest, 3.3, through the whole suite). Per version: Airflow,
# the runtime requirements (requirements.in), this package (editable, no dependencies: its own bounds
# are what is being proven), the test tools; then the provider, DAG-building, dag.test poll/import,
# backfill, push, idle-check and plugin tests against real Postgres, Dovecot and Airflow components.
#
# First, without installing anything: requirements.txt (what the Astro image installs) resolved with
# each supported Airflow's pinned release for the Pythons the images use (3.11, 3.12), and for 3.3
# with the providers Astro Runtime 3.3-2 ships pinned as constraints (Astronomer's provider reference):
# the runtime lock installs into that image without moving one of its providers.
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

# Astro Runtime 3.3-2's providers (https://www.astronomer.io/docs/runtime/runtime-provider-reference)
RUNTIME_33_PROVIDERS="apache-airflow-providers-celery==3.21.0 apache-airflow-providers-common-compat==1.15.0
apache-airflow-providers-common-io==1.8.0 apache-airflow-providers-common-sql==2.0.1 apache-airflow-providers-elasticsearch==6.7.0
apache-airflow-providers-openlineage==2.18.1 apache-airflow-providers-smtp==3.0.1 apache-airflow-providers-standard==1.15.0"
status=0
resolve_dir=$(mktemp -d)
trap 'rm -rf "$resolve_dir"' EXIT
for airflow in ${RESOLVE_VERSIONS:-3.2.2 3.3.2}; do
  for python in 3.11 3.12; do
    printf 'apache-airflow==%s\n-r %s/requirements.txt\n' "$airflow" "$PWD" > "$resolve_dir/in.txt"
    : > "$resolve_dir/constraints.txt"
    label="requirements.txt + apache-airflow==$airflow, Python $python"
    if [ "${airflow%.*}" = 3.3 ]; then
      printf '%s\n' $RUNTIME_33_PROVIDERS > "$resolve_dir/constraints.txt"
      sed 's/==.*//' "$resolve_dir/constraints.txt" >> "$resolve_dir/in.txt"
      label="$label, Astro Runtime 3.3-2's providers"
    fi
    if uv pip compile -q --python-version "$python" --python-platform x86_64-manylinux_2_28 -c "$resolve_dir/constraints.txt" \
         "$resolve_dir/in.txt" -o "$resolve_dir/out.txt" 2> "$resolve_dir/err.txt"; then
      echo "== resolves: $label ($(grep -c '==' "$resolve_dir/out.txt") packages)"
    else
      echo "== DOES NOT RESOLVE: $label"; cat "$resolve_dir/err.txt"; status=1
    fi
  done
done

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

#!/usr/bin/env bash
# Installs what the project needs, idempotently: Debian's postgresql, dovecot-imapd and
# redis-server (the Celery broker of make scale and its test) when missing (and chromium with WITH_BROWSER=1, for make test), uv, and .venv with the pinned lock (requirements-dev.txt) plus this project (editable). Second runs are fast.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_debs=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_debs+=(postgresql)
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || need_debs+=(dovecot-imapd)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need_debs+=(redis-server)
# The browser tests (make test) drive Debian's Chromium; the demo does not need it.
if [ -n "${WITH_BROWSER:-}" ]; then command -v chromium >/dev/null 2>&1 || need_debs+=(chromium); fi
if [ ${#need_debs[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_debs[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_debs[@]}" >/dev/null
fi
if ! command -v uv >/dev/null 2>&1; then
  if [ -x "$HOME/.local/bin/uv" ]; then export PATH="$HOME/.local/bin:$PATH"
  else
    echo "bootstrap: installing uv"
    python3 -m pip install -q --user uv 2>/dev/null || python3 -m pip install -q uv
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi

stamp=.venv/.imap-intake-stamp
want=$( (cat requirements-dev.txt pyproject.toml ${BENCH:+requirements-bench.txt}; echo bytecode-v3) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
echo "bootstrap: creating .venv from requirements-dev.txt"
python=$(command -v python3.11 || command -v python3)
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "bootstrap: the lock is for Python 3.11; $python is $("$python" --version 2>&1). Install python3.11." >&2; exit 1; }
[ -x .venv/bin/python ] || UV_PYTHON_DOWNLOADS=never uv venv -q --python "$python" .venv
# Bytecode now: this environment may set PYTHONDONTWRITEBYTECODE, and Airflow then recompiles at every start.
VIRTUAL_ENV=.venv uv pip install -q --compile-bytecode -r requirements-dev.txt ${BENCH:+-r requirements-bench.txt}
VIRTUAL_ENV=.venv uv pip install -q --no-deps -e .
# The editable build leaves plugins/imap_intake.egg-info behind. Airflow puts the plugins folder on
# sys.path, where that metadata is a second "imap-intake" distribution: its airflow.plugins entry
# point would register the plugin twice (an import error in the UI). The installed dist-info is enough.
rm -rf plugins/*.egg-info
.venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages >/dev/null 2>&1 || true
echo "$want" > "$stamp"

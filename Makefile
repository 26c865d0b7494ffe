# The two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)
.PHONY: demo test airflow deliver down dist bench bench-backfill bench-push bench-survey scale scale-1000 compat reliability lock lint

demo:
	@bash scripts/bootstrap.sh
	@$(PY) -m devstack demo

test:
	@WITH_BROWSER=1 bash scripts/bootstrap.sh
	@bash scripts/test.sh

airflow:
	@bash scripts/bootstrap.sh
	@$(PY) -m devstack airflow

deliver:
	@$(PY) -m devstack deliver

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else python3 -m devstack down; fi

bench:
	@BENCH=1 bash scripts/bootstrap.sh
	@$(PY) -m bench.run

bench-backfill:
	@BENCH=1 bash scripts/bootstrap.sh
	@$(PY) -m bench.backfill --days 31 --messages 300 --max-active-runs 192 --runs-per-loop 256 --write
	@$(PY) -c "import json, pathlib; from bench.report import render; render(json.loads(pathlib.Path('bench/results/latest.json').read_text()), pathlib.Path('docs/benchmarks.md'))"

bench-push:
	@BENCH=1 bash scripts/bootstrap.sh
	@$(PY) -m bench.push --deliveries 20 --write
	@$(PY) -c "import json, pathlib; from bench.report import render; render(json.loads(pathlib.Path('bench/results/latest.json').read_text()), pathlib.Path('docs/benchmarks.md'))"

bench-survey:
	@BENCH=1 bash scripts/bootstrap.sh
	@$(PY) -m bench.survey --messages 100000 --write
	@$(PY) -c "import json, pathlib; from bench.report import render; render(json.loads(pathlib.Path('bench/results/latest.json').read_text()), pathlib.Path('docs/benchmarks.md'))"

# sdist and wheel in dist/: pip install dist/imap_intake-*.whl into an existing Airflow (docs/deploy.md)
dist:
	@bash scripts/bootstrap.sh
	@PATH="$$HOME/.local/bin:$$PATH" uv build -o dist .

# A CeleryExecutor cluster (Redis, two workers) under load with a worker killed: ends with a verdict line.
# STORAGE=s3: attachments in a bucket of a local S3 server (moto, over HTTP) instead of the shared disk.
scale:
	@bash scripts/bootstrap.sh
	@$(PY) -m bench.scale --write $(if $(STORAGE),--storage $(STORAGE))

# The provider's tests against the older supported Airflow minors, each in its own venv (.compat/).
compat:
	@bash scripts/compat.sh

# 1,000 workspaces (half push) on this machine, about an hour: figures per component, the same verdict.
scale-1000:
	@BENCH=1 bash scripts/bootstrap.sh
	@$(PY) -m bench.scale_large --workspaces 1000 --write

reliability:
	@bash scripts/bootstrap.sh
	@rm -f .local/reliability.json && mkdir -p .local
	@IMAP_INTAKE_RELIABILITY_REPORT=$(CURDIR)/.local/reliability.json .venv/bin/python -m pytest -q tests/reliability --deselect tests/reliability/test_secrets.py::test_the_published_figures_match_this_suite
	@.venv/bin/python scripts/reliability_report.py .local/reliability.json

lint:
	@.venv/bin/ruff check .
	@.venv/bin/mypy

# requirements-dev.txt: the full lock (.venv, CI). requirements.txt: the runtime's direct dependencies at
# the same versions, for the Astro image (its Airflow and the rest come from the Runtime).
LOCK := uv pip compile -q --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --no-header --custom-compile-command "make lock"
lock:
	$(LOCK) requirements-dev.in -o requirements-dev.txt
	$(LOCK) requirements.in --no-deps -c requirements-dev.txt -o requirements.txt
	$(LOCK) requirements-bench.in -c requirements-dev.txt -o requirements-bench.txt

# The two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)
.PHONY: demo test airflow down bench lock lint

demo:
	@bash scripts/bootstrap.sh
	@$(PY) -m devstack demo

test:
	@bash scripts/bootstrap.sh
	@bash scripts/test.sh

airflow:
	@bash scripts/bootstrap.sh
	@$(PY) -m devstack airflow

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else python3 -m devstack down; fi

bench:
	@BENCH=1 bash scripts/bootstrap.sh
	@$(PY) -m bench.run

lint:
	@.venv/bin/ruff check .
	@.venv/bin/mypy

lock:
	uv pip compile -q requirements.in --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o requirements.txt --no-header --custom-compile-command "make lock"
	uv pip compile -q requirements-bench.in -c requirements.txt --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o requirements-bench.txt --no-header --custom-compile-command "make lock"

"""A real Airflow on this machine: api-server, scheduler (LocalExecutor), dag-processor and, where
asked, the triggerer, as separate processes in one process group, with the metadata in Postgres.

Used by the backfill tests, ``make airflow`` and the benchmarks: what a user does through Airflow
(backfill create, trigger, the UI) runs through Airflow's own machinery, not a hand-built context.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.process import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def project_airflow_settings(home: Path, metadata_url: str) -> dict[str, str]:
    """What every Airflow of this project's devstack shares: this repo's DAGs and plugins, no
    examples, Test connection on, the metadata in Postgres with the LocalExecutor."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
    }


def airflow_base_env(home: Path, metadata_url: str, *, api_port: int, extra: Mapping[str, str] = ()) -> dict[str, str]:  # type: ignore[assignment]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(project_airflow_settings(home, metadata_url))
    env.update({
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        # Many short runs (a backfill of */15 over a month is ~3,000): examine and start more per loop.
        "AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "64",
        "AIRFLOW__SCHEDULER__MAX_DAGRUNS_TO_CREATE_PER_LOOP": "64",
        "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    })
    env.update(dict(extra))
    return env


@dataclass
class AirflowCluster:
    home: Path
    env: dict[str, str]
    components: tuple[str, ...] = ("api-server", "scheduler", "dag-processor")
    pgid: int | None = None
    logs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls, home: Path, metadata_url: str, *, extra_env: Mapping[str, str] = (), api_port: int | None = None,  # type: ignore[assignment]
               components: tuple[str, ...] = ("api-server", "scheduler", "dag-processor")) -> AirflowCluster:
        home.mkdir(parents=True, exist_ok=True)
        env = airflow_base_env(home, metadata_url, api_port=api_port or free_port(), extra=extra_env)
        return cls(home=home, env=env, components=components)

    @property
    def api_port(self) -> int:
        return int(self.env["AIRFLOW__API__PORT"])

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(VENV_BIN / "airflow"), *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({done.returncode}): {(done.stdout + done.stderr)[-3000:]}")
        return done

    def migrate(self) -> None:
        self.airflow("db", "migrate", timeout=600)

    def start(self) -> None:
        """Start the components under one shell that leads a new session: one process group to stop."""
        import shlex

        commands = []
        for component in self.components:
            log = self.home / f"{component}.log"
            self.logs[component] = log
            commands.append(f"{shlex.quote(str(VENV_BIN / 'airflow'))} {component} >>{shlex.quote(str(log))} 2>&1 &")
        leader = subprocess.Popen(["bash", "-c", " ".join(commands) + " wait"], env=self.env, cwd=ROOT,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        self.pgid = leader.pid
        (self.home / "cluster.pgid").write_text(str(self.pgid))
        if "api-server" in self.components:
            wait_for_port(self.api_port, timeout=180)

    def stop(self) -> None:
        pgid = self.pgid
        if pgid is None:
            try:
                pgid = int((self.home / "cluster.pgid").read_text())
            except (OSError, ValueError):
                return
        try:
            os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.killpg(pgid, 0)
                time.sleep(0.2)
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pgid = None
        (self.home / "cluster.pgid").unlink(missing_ok=True)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.airflow("dags", "list", "-o", "json", check=False)
            if done.returncode == 0 and any(d.get("dag_id") == dag_id for d in _json(done.stdout)):
                return
            time.sleep(2)
        raise TimeoutError(f"the dag-processor did not serialise {dag_id} within {timeout:.0f}s")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        done = self.airflow("dags", "list-runs", dag_id, "-o", "json", check=False)
        return _json(done.stdout) if done.returncode == 0 else []


def _json(text: str) -> list[dict[str, Any]]:
    """The JSON list a CLI command printed, among log lines (which contain brackets too)."""
    for line in reversed(text.splitlines()):
        if line.startswith("[") and line.rstrip().endswith("]"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, list):
                return value
    return []

"""A real Airflow on this machine: api-server, scheduler, dag-processor and, where asked, the
triggerer and Celery workers, each a process group of its own, with the metadata in Postgres. The
LocalExecutor by default; ``celery_settings`` and ``celery_worker`` make it the CeleryExecutor with
workers that are hosts of their own (``make scale``).

Used by the backfill, push and scale tests, ``make airflow`` and the benchmarks: what a user does
through Airflow (backfill create, trigger, the UI) runs through Airflow's own machinery.
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

from devstack.process import free_port, group_alive, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def _jwt_secret() -> str:
    import secrets

    return os.environ.get("IMAP_INTAKE_DEVSTACK_JWT_SECRET") or secrets.token_urlsafe(64)


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
        **QUIET_SETTINGS,
    }


#: A JWT secret of 64+ bytes: Airflow generates a 16-byte one when none is set, and PyJWT then warns
#: ("HMAC key is ... bytes long") on every token it signs or checks with HS512, in every component.
QUIET_SETTINGS = {
    "AIRFLOW__API_AUTH__JWT_SECRET": _jwt_secret(),
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


@dataclass(frozen=True)
class Component:
    """One Airflow process: ``airflow <args>``, with its own additions to the environment."""

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, component: str | Component) -> Component:
        return component if isinstance(component, Component) else cls(component, (component,))


HOSTNAME_VARIABLE = "IMAP_INTAKE_DEVSTACK_HOSTNAME"


def component_hostname() -> str:
    """``[core] hostname_callable`` of the devstack's Celery workers: each worker process is a host of
    its own in Airflow's records (task instances' ``hostname``), though all run on this machine."""
    import socket

    return os.environ.get(HOSTNAME_VARIABLE) or socket.getfqdn()


def celery_worker(name: str, *, concurrency: int, queues: str = "default") -> Component:
    """A Celery worker as a host of its own: its name for Celery and for Airflow, its own log port."""
    return Component(name, ("celery", "worker", "--celery-hostname", f"{name}@imap-intake", "--concurrency", str(concurrency),
                            "--queues", queues),
                     env={HOSTNAME_VARIABLE: name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devstack.airflow_cluster.component_hostname",
                          "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})


def celery_settings(broker_url: str, metadata_url: str) -> dict[str, str]:
    """The CeleryExecutor with Redis as broker and Airflow's metadata database as result backend."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url.replace("+psycopg2", ""),
    }


def stop_process_groups(pgids: list[int], *, grace: float = 20) -> None:
    """SIGTERM every group, wait up to ``grace`` seconds for all of them, then SIGKILL what is left."""
    alive = []
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGTERM)
            alive.append(pgid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [g for g in alive if group_alive(g)]
    for pgid in alive:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class AirflowCluster:
    home: Path
    env: dict[str, str]
    components: tuple[str | Component, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
    pgids: dict[str, int] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls, home: Path, metadata_url: str, *, extra_env: Mapping[str, str] = (), api_port: int | None = None,  # type: ignore[assignment]
               components: tuple[str | Component, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")) -> AirflowCluster:
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
        """Start every component in a session of its own: each is one process group, so one of them
        (a Celery worker) can be killed and restarted alone, and ``stop`` ends them all."""
        for component in self.components:
            self.start_component(component)
        if "api-server" in self.names:
            wait_for_port(self.api_port, timeout=180)

    @property
    def names(self) -> list[str]:
        return [Component.of(c).name for c in self.components]

    def start_component(self, component: str | Component) -> None:
        part = Component.of(component)
        log = self.home / f"{part.name}.log"
        self.logs[part.name] = log
        with log.open("ab") as out:
            process = subprocess.Popen([str(VENV_BIN / "airflow"), *part.args], env={**self.env, **part.env}, cwd=ROOT,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgids[part.name] = process.pid
        self._save_pgids()

    def kill_component(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one component's whole process group (a worker with its task processes)."""
        pgid = self.pgids.pop(name)
        self._save_pgids()
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    def component_pids(self, name: str) -> list[int]:
        """The live processes of one component (its process group)."""
        pgid = self.pgids.get(name)
        if pgid is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == pgid:
                        found.append(int(entry.name))
                except ProcessLookupError:
                    continue
        return found

    def _save_pgids(self) -> None:
        (self.home / "cluster.pgids").write_text(json.dumps(self.pgids))

    def stop(self) -> None:
        pgids = dict(self.pgids)
        if not pgids:
            try:
                pgids = json.loads((self.home / "cluster.pgids").read_text())
            except (OSError, ValueError):
                return
        stop_process_groups(list(pgids.values()))
        self.pgids.clear()
        (self.home / "cluster.pgids").unlink(missing_ok=True)

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

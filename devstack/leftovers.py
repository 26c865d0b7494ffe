"""What a benchmark or ``make scale`` started (Postgres, Dovecot, Redis, an Airflow cluster), recorded
under ``.local/runs/`` while it runs, so that ``make down`` stops it all when such a run was
interrupted (Ctrl-C, a closed terminal) before it could clean up after itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RUNS = Path(__file__).resolve().parent.parent / ".local" / "runs"


def record(name: str, **parts: str) -> Path:
    """Note the servers of a run: ``postgres`` (data dir), ``dovecot``, ``redis``, ``s3`` (roots), ``airflow``
    (home) and ``scratch`` (its folder, removed last)."""
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{name}.json"
    path.write_text(json.dumps(parts))
    return path


def forget(path: Path) -> None:
    path.unlink(missing_ok=True)


def stop_all() -> list[str]:
    """Stop everything recorded by runs that did not finish; returns their names."""
    from devstack.airflow_cluster import stop_process_groups
    from devstack.dovecot import DovecotServer
    from devstack.postgres import PostgresServer
    from devstack.redis import RedisServer
    from devstack.s3 import S3Server

    stopped = []
    for path in sorted(RUNS.glob("*.json")) if RUNS.exists() else []:
        try:
            parts = json.loads(path.read_text())
        except ValueError:
            parts = {}
        if "airflow" in parts:
            try:
                stop_process_groups(list(json.loads((Path(parts["airflow"]) / "cluster.pgids").read_text()).values()))
            except (OSError, ValueError):
                pass
        if "redis" in parts:
            RedisServer(Path(parts["redis"]), 0).destroy()
        if "s3" in parts:
            S3Server(Path(parts["s3"]), 0).destroy()
        if "dovecot" in parts:
            DovecotServer(root=Path(parts["dovecot"])).destroy()
        if "postgres" in parts:
            PostgresServer(data_dir=Path(parts["postgres"]), port=0).destroy()
        if "scratch" in parts:
            shutil.rmtree(parts["scratch"], ignore_errors=True)
        forget(path)
        stopped.append(path.stem)
    return stopped

"""What an idle scheduler costs with many pools, StatsD on or off.

A workspace polls in the pool of its IMAP connection by default, so 1,000 mailboxes are 1,000 pools.
With StatsD on, Airflow's scheduler sends five gauges per pool every ``[scheduler]
pool_metrics_interval`` (5 s): this measures the scheduler's CPU, idle (no DAGs), for each setting.

    python -m bench.idle_scheduler --pools 0 975 --statsd on off

Prints one JSON object per setting (the scheduler's cores busy over ``--seconds``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

from bench.scale_figures import cpu_seconds
from devstack.airflow_cluster import AirflowCluster
from devstack.postgres import PostgresServer
from devstack.process import free_port


def measure(pools: int, statsd: bool, *, seconds: float, settle: float, pool_metrics_interval: float | None) -> dict[str, object]:
    postgres = PostgresServer.create()
    postgres.start()
    root = Path(tempfile.mkdtemp(prefix="imap-intake-idle-scheduler-"))
    (root / "dags").mkdir()
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"), "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
           "AIRFLOW__METRICS__STATSD_ON": str(statsd), "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
           "AIRFLOW__METRICS__STATSD_PORT": str(free_port())}  # nobody listens: the sending is what is measured
    if pool_metrics_interval is not None:
        env["AIRFLOW__SCHEDULER__POOL_METRICS_INTERVAL"] = str(pool_metrics_interval)
    cluster = AirflowCluster.create(root / "airflow", postgres.create_database("airflow"), extra_env=env, components=("scheduler",))
    try:
        cluster.migrate()
        if pools:
            (root / "pools.json").write_text(json.dumps({f"imap_intake__imap_mb{n}": {"slots": 4, "description": "IMAP sessions"}
                                                         for n in range(pools)}))
            cluster.airflow("pools", "import", str(root / "pools.json"), timeout=900)
        cluster.start()
        time.sleep(settle)
        before, began = cpu_seconds(cluster, ["scheduler"])["scheduler"], time.monotonic()
        time.sleep(seconds)
        after, ended = cpu_seconds(cluster, ["scheduler"])["scheduler"], time.monotonic()
    finally:
        cluster.stop()
        postgres.stop()
    return {"pools": pools, "statsd": statsd, "pool_metrics_interval": pool_metrics_interval or 5.0,
            "scheduler_cores_busy": round((after - before) / (ended - began), 4), "seconds": round(ended - began)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pools", type=int, nargs="+", default=[0, 975])
    parser.add_argument("--statsd", choices=("on", "off"), nargs="+", default=["on", "off"])
    parser.add_argument("--pool-metrics-interval", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--settle", type=float, default=40, help="seconds after start before measuring")
    args = parser.parse_args()
    for pools, statsd in itertools.product(args.pools, args.statsd):
        print(json.dumps(measure(pools, statsd == "on", seconds=args.seconds, settle=args.settle,
                                 pool_metrics_interval=args.pool_metrics_interval)), flush=True)


if __name__ == "__main__":
    main()

"""``make scale``: the intake on a multi-worker Airflow, loaded, with one worker killed mid-run.

A real CeleryExecutor deployment on this machine: Airflow's metadata in Postgres, Redis as the
Celery broker, scheduler, dag-processor, triggerer, api-server and several Celery workers, each a
process group and a host of its own (``worker-1``, ``worker-2``: task instances record them). 50
workspaces over 10 mailboxes (catch-all mailboxes shared by several workspaces, routed by
recipient), each with two import tasks that fan out over the workers. Mail is appended
continuously while runs overlap; one worker is killed with SIGKILL (its whole process group: the
worker and the task processes it runs) while it runs a task, and started again later. Then the
mail is drained, the cluster measured while idle, and everything checked and stopped:

    every delivered attachment stored once, every order once, the killed worker's tasks retried to
    success, no run or task stuck, no flag changed, no process of ours left running.

    python -m bench.scale [--workspaces 50 --mailboxes 10 --workers 2 --minutes 4] [--storage s3] [--write]

``--storage s3`` stores the attachments in a bucket of a local S3 server (moto's server mode, over
HTTP) through an Airflow ``aws`` connection instead of on the disk the workers share, and the check
reads every stored attachment back from the bucket.

Ends with one verdict line and exit status 0 only when every check holds. ``--write`` keeps the
figures in bench/results/scale.json (scale-s3.json) and renders them into docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.scale_checks import Verdict, finished_before_kill, task_after_kill
from bench.scale_figures import RESULTS, Sampler, cpu_seconds, figures
from bench.servers import Servers, servers
from devstack.airflow_cluster import AirflowCluster, Component, celery_settings, celery_worker
from devstack.dovecot import append_messages
from devstack.samples import PO_CSV_EN, message

S3_BUCKET, S3_CONN = "scale-orders", "scale_s3"
#: How many workspaces share each mailbox, for 50 over 10 (the first ones are catch-alls).
SHARES_50_OVER_10 = (15, 10, 5, 5, 5, 4, 3, 1, 1, 1)


def spread(workspaces: int, mailboxes: int) -> list[int]:
    """The mailbox of each workspace: the default shares for 50 over 10, else round robin."""
    if (workspaces, mailboxes) == (50, 10):
        return [box for box, count in enumerate(SHARES_50_OVER_10) for _ in range(count)]
    return [n % mailboxes for n in range(workspaces)]


@dataclass
class Deliveries:
    """What was appended: order number -> (workspace, attachment name), and the messages' mailboxes."""

    orders: dict[str, tuple[str, str]] = field(default_factory=dict)
    messages: int = 0
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def deliver(found: Servers, boxes: list[str], owners: list[int], per_minute: float, until: float, out: Deliveries,
            rng: random.Random) -> None:
    """Append orders at a steady rate to random workspaces' mailboxes until ``until`` (monotonic)."""
    try:
        _deliver(found, boxes, owners, per_minute, until, out, rng)
    except Exception as error:  # noqa: BLE001 - reported by the verdict, the run goes on to clean up
        out.error = f"{type(error).__name__}: {error}"


def _deliver(found: Servers, boxes: list[str], owners: list[int], per_minute: float, until: float, out: Deliveries,
             rng: random.Random) -> None:
    seq = 0
    while time.monotonic() < until:
        started = time.monotonic()
        n = rng.randrange(len(owners))
        slug = f"s{n:02d}"
        attachments = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            seq += 1
            number = f"SC-{seq:05d}"
            name = f"{number}.csv"
            attachments.append((name, "text/csv", PO_CSV_EN.replace(b"PO-7731", number.encode())))
            with out.lock:
                out.orders[number] = (slug, name)
        mail = message(sender="buyer@acme.example", to=f"{slug}@orders.example", subject=f"Orders for {slug}", attachments=attachments)
        append_messages(found.dovecot, boxes[owners[n]], [(mail.as_bytes(), None)])
        with out.lock:
            out.messages += 1
        time.sleep(max(0.0, 60.0 / per_minute - (time.monotonic() - started)))


def workspaces_yaml(root: Path, owners: list[int], schedule: str, import_tasks: int, *, in_triggerer: bool = True,
                    storage: str = "disk") -> str:
    shared = {box for box in owners if owners.count(box) > 1}
    where = f"'file://{root}/store'" if storage == "disk" else f"'s3://{S3_BUCKET}/intake', storage_conn_id: {S3_CONN}"
    lines = ["workspaces:"]
    for n, box in enumerate(owners):
        recipients = f", recipients: [s{n:02d}@orders.example]" if box in shared else ""
        lines.append(f"  - {{slug: s{n:02d}, imap_conn_id: imap_mb{box}, schedule: '{schedule}', start_date: 2026-01-01, "
                     f"storage_base: {where}, default_supplier: Scale supplier, pool: imap_intake__imap_mb{box}, "
                     f"import_tasks: {import_tasks}, start_in_triggerer: {str(in_triggerer).lower()}{recipients}}}")
    return "\n".join(lines) + "\n"


def kill_a_worker_mid_task(cluster: AirflowCluster, meta: psycopg.Connection[Any], worker: Component, *, restart_after: float,
                           timeout: float = 120) -> dict[str, Any]:
    """SIGKILL ``worker``'s process group while it runs a task; start it again ``restart_after`` s later."""
    deadline = time.monotonic() + timeout
    running: list[tuple[Any, ...]] = []
    while not running and time.monotonic() < deadline:
        running = meta.execute("SELECT dag_id, run_id, task_id, try_number, map_index FROM task_instance WHERE state = 'running' "
                               "AND hostname = %s", (worker.name,)).fetchall()  # map_index: import slots share a task id
        if not running:
            time.sleep(0.2)
    processes = len(cluster.component_pids(worker.name))
    cluster.kill_component(worker.name, signal.SIGKILL)
    killed_at = time.time()
    print(f"scale: SIGKILL {worker.name} ({processes} processes) while it ran {len(running)} task(s): "
          f"{[f'{r[0]}.{r[2]}' for r in running]}", flush=True)
    time.sleep(restart_after)
    cluster.start_component(worker)
    print(f"scale: {worker.name} started again", flush=True)
    return {"worker": worker.name, "processes_killed": processes, "killed_at": killed_at, "restarted_at": time.time(),
            "interrupted": [list(r) for r in running]}


def kill_until_interrupted(cluster: AirflowCluster, meta: psycopg.Connection[Any], worker: Component, *, restart_after: float,
                           timeout: float = 120, attempts: int = 3) -> dict[str, Any]:
    """``kill_a_worker_mid_task`` again (after the restart) while every task it saw had already finished
    by the SIGKILL (a poll takes about a second: the look and the kill can straddle its end)."""
    for _ in range(attempts):
        kill = kill_a_worker_mid_task(cluster, meta, worker, restart_after=restart_after, timeout=timeout)
        if not all(finished_before_kill(task_after_kill(meta, task, kill["killed_at"]), task[3]) for task in kill["interrupted"]):
            return kill
        print("scale: the task(s) had finished before the SIGKILL; once more", flush=True)
    return kill


def wait_for_drain(ledger: psycopg.Connection[Any], out: Deliveries, timeout: float) -> float:
    """Until every delivered order is imported; returns when that was (epoch seconds)."""
    deadline = time.monotonic() + timeout
    names = [name for _, name in out.orders.values()]
    while time.monotonic() < deadline:
        done = ledger.execute("SELECT count(*) FROM imap_intake.attachment a JOIN imap_intake.purchase_order o ON o.attachment = a.id "
                              "WHERE a.original_filename = ANY(%s) AND a.import_status = 'imported'", (names,)).fetchone()
        if done and done[0] >= len(names):
            return time.time()
        time.sleep(2)
    raise TimeoutError(f"delivered mail not imported after {timeout:.0f} s")


def wait_for_retries(meta: psycopg.Connection[Any], kill: dict[str, Any], timeout: float) -> None:
    """Until the tasks the kill interrupted have finished again (noticed lost, retried) or ``timeout``."""
    deadline = time.monotonic() + timeout
    keys = [(dag_id, run_id, task_id, map_index) for dag_id, run_id, task_id, _try, map_index in kill["interrupted"]]
    while keys and time.monotonic() < deadline:
        keys = [key for key in keys if (meta.execute("SELECT state FROM task_instance WHERE dag_id = %s AND run_id = %s "
                                                     "AND task_id = %s AND map_index = %s", key).fetchone() or ("gone",))[0]
                not in ("success", "failed", "upstream_failed", "skipped", "removed", "gone")]
        time.sleep(2)


def judge(report: dict[str, Any], meta: psycopg.Connection[Any], ledger: psycopg.Connection[Any], found: Servers, boxes: list[str],
          out: Deliveries, kill: dict[str, Any]) -> Verdict:
    """The exactly-once verdict of the run (scale_checks.check); closes the run's two connections."""
    from bench.scale_checks import check

    report["kill"] = {k: v for k, v in kill.items() if k not in ("killed_at", "restarted_at")}
    verdict = check(meta, ledger, found, boxes, out.orders, kill)
    verdict.delivery_error = out.error
    meta.close()
    ledger.close()
    return verdict


def conclude(report: dict[str, Any], verdict: Verdict, root: Path, groups: list[int], pids: list[int], *, results: Path | None,
             render: Callable[[dict[str, Any], Path], None]) -> int:
    """After teardown: what was left running, the report (kept in ``results`` and rendered into
    docs/scaling.md when given), the verdict line; the exit status."""
    from bench.scale_checks import left_running

    verdict.left_running = left_running(root, groups, pids)
    report["verdict"] = verdict.as_dict()
    print(json.dumps(report, indent=2), flush=True)
    if results is not None:
        results.write_text(json.dumps(report, indent=2) + "\n")
        render(report, Path(__file__).resolve().parent.parent / "docs" / "scaling.md")
    print(verdict.line(), flush=True)
    return 0 if verdict.passed else 1


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspaces", type=int, default=50)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="task slots per worker")
    parser.add_argument("--minutes", type=float, default=4, help="how long mail is delivered")
    parser.add_argument("--per-minute", type=float, default=30, help="messages delivered per minute")
    parser.add_argument("--idle-minutes", type=float, default=2, help="how long the idle cluster is measured")
    parser.add_argument("--schedule", default="*/2 * * * *")
    parser.add_argument("--import-tasks", type=int, default=2)
    parser.add_argument("--lost-after", type=int, default=60,
                        help="seconds without heartbeat before the scheduler retries a task (Airflow's default: 300)")
    parser.add_argument("--scheduler-idle-sleep", type=float, default=1.0,
                        help="[scheduler] scheduler_idle_sleep_time: Airflow's default 1 s (the test clusters use 0.2 for speed)")
    parser.add_argument("--start-in-worker", action="store_true",
                        help="workspaces with start_in_triggerer: false (every poll starts on a worker): the cost before the idle check")
    parser.add_argument("--storage", choices=("disk", "s3"), default="disk",
                        help="where attachments are stored: the disk the workers share, or a bucket of a local S3 server over HTTP")
    parser.add_argument("--write", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    from bench.scale_checks import server_pids

    owners = spread(args.workspaces, args.mailboxes)
    rng = random.Random(16)
    out = Deliveries()
    report: dict[str, Any] = {"workspaces": args.workspaces, "mailboxes": args.mailboxes, "workers": args.workers,
                              "concurrency": args.concurrency, "schedule": args.schedule, "import_tasks": args.import_tasks,
                              "command": "make scale" + (" (--start-in-worker)" if args.start_in_worker else "") + (" STORAGE=s3" if args.storage == "s3" else ""),
                              "storage": args.storage,
                              "start_in_triggerer": not args.start_in_worker,
                              "scheduler_idle_sleep": args.scheduler_idle_sleep, "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
    with servers("imap-intake-scale-", redis=True, s3=args.storage == "s3") as found:
        assert found.redis is not None
        root = found.root
        tag = secrets.token_hex(2)
        boxes = [f"mb{box}-{tag}@scale.test" for box in range(args.mailboxes)]
        (root / "workspaces.yaml").write_text(workspaces_yaml(root, owners, args.schedule, args.import_tasks,
                                                                  in_triggerer=not args.start_in_worker, storage=args.storage))
        storage_env = {}
        if found.s3 is not None:
            found.s3.make_bucket(S3_BUCKET)
            storage_env[f"AIRFLOW_CONN_{S3_CONN.upper()}"] = found.s3.connection_uri()
        metadata = found.postgres.create_database("airflow_scale")
        env = {"IMAP_INTAKE_WORKSPACES_FILE": str(root / "workspaces.yaml"), "AIRFLOW_CONN_IMAP_INTAKE_DB": found.ledger_connection(),
               **{f"AIRFLOW_CONN_IMAP_MB{box}": found.imap_connection(user) for box, user in enumerate(boxes)},
               **celery_settings(found.redis.url, metadata),
               # A lost worker's tasks are noticed after this long without heartbeat (production default 300 s).
               "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(args.lost_after),
               "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
               "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
               "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": f"{args.scheduler_idle_sleep:g}", **storage_env}
        workers = [celery_worker(f"worker-{n}", concurrency=args.concurrency) for n in range(1, args.workers + 1)]
        cluster = found.cluster = AirflowCluster.create(root / "airflow", metadata, extra_env=env,
                                                        components=("api-server", "scheduler", "dag-processor", "triggerer", *workers))
        print(f"scale: {args.workspaces} workspaces over {args.mailboxes} mailboxes, {args.workers} Celery workers "
              f"x {args.concurrency} slots, Redis on 127.0.0.1:{found.redis.port}; preparing Airflow's metadata", flush=True)
        cluster.migrate()
        # One pool per mailbox connection, as docs/workspaces.md asks; one CLI call (each costs seconds of CPU).
        (root / "pools.json").write_text(json.dumps({f"imap_intake__imap_mb{box}": {"slots": 4, "description": "IMAP sessions to one mailbox"}
                                                     for box in range(args.mailboxes)}))
        cluster.airflow("pools", "import", str(root / "pools.json"))
        cluster.start()
        dags = [f"imap_intake__s{n:02d}" for n in range(args.workspaces)]
        cluster.wait_for_dag(dags[-1], timeout=300)
        meta = psycopg.connect(metadata.replace("postgresql+psycopg2://", "postgresql://"), autocommit=True)
        ledger = psycopg.connect(found.postgres.dsn, autocommit=True)
        from imap_intake.store import db

        db.migrate(ledger)
        sampler = Sampler(found, boxes, {"ledger": found.postgres.database, "airflow": "airflow_scale"})
        sampler.start()
        cluster.airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", r"^imap_intake__s\d+$")
        load_started = time.time()
        until = time.monotonic() + args.minutes * 60
        print(f"scale: {len(dags)} DAGs on; delivering {args.per_minute:g} messages a minute for {args.minutes:g} min", flush=True)
        delivery = threading.Thread(target=deliver, args=(found, boxes, owners, args.per_minute, until, out, rng), daemon=True)
        delivery.start()
        time.sleep(args.minutes * 60 * 0.4)
        kill = kill_until_interrupted(cluster, meta, workers[0], restart_after=20)
        delivery.join()
        load_ended = time.time()
        print(f"scale: delivered {out.messages} messages with {len(out.orders)} orders; draining", flush=True)
        drained = wait_for_drain(ledger, out, timeout=900)
        wait_for_retries(meta, kill, timeout=600)
        print(f"scale: everything imported {drained - load_ended:.0f} s after the last delivery; measuring the idle cluster "
              f"for {args.idle_minutes:g} min", flush=True)
        measured = [c if isinstance(c, str) else c.name for c in cluster.components]
        idle_from, cpu_before = time.time(), cpu_seconds(cluster, measured)
        time.sleep(args.idle_minutes * 60)
        idle_to, cpu_after = time.time(), cpu_seconds(cluster, measured)
        sampler.stop()
        report["figures"] = figures(meta, ledger, sampler, window=(load_started, drained), idle=(idle_from, idle_to),
                                    cpu=(cpu_before, cpu_after), workers=[w.name for w in workers])
        report["delivered"] = {"messages": out.messages, "orders": len(out.orders), "minutes": args.minutes,
                               "per_minute": args.per_minute}
        verdict = judge(report, meta, ledger, found, boxes, out, kill)
        groups, pids = list(cluster.pgids.values()), server_pids(found)
    from bench.scale_figures import render

    return conclude(report, verdict, found.root, groups, pids, results=RESULTS[args.storage] if args.write else None, render=render)


if __name__ == "__main__":
    sys.exit(main())

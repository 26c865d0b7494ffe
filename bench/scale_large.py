"""``make scale-1000``: a thousand workspaces on this machine, half of them push, measured per component.

1,000 workspaces over ~975 Dovecot users: five catch-all mailboxes shared by six workspaces each
(routed by recipient), every other workspace a mailbox of its own. The workspaces of every other
mailbox are ``push: true`` (IMAP IDLE in the triggerer, one session per mailbox, a safety-net cron
``0 */6 * * *``); the rest poll on ``*/15`` only. CeleryExecutor with Redis, two workers, scheduler,
dag-processor, triggerer and api-server with Airflow's default settings except where said; the IMAP
connections live in Airflow's metadata (imported, as a UI user would add them), one pool per mailbox.

1. **warm-up**: each workspace's first sync done in-process (``first_sync``: a cursor each, as in a
   running deployment); every DAG unpaused; until each has finished a run.
2. **load**: orders trickle in (``--per-minute`` to random workspaces) for ``--minutes``; a worker is
   SIGKILLed while it runs a task and started again.
3. **drain**: until every delivered order is imported (a cron workspace's mail waits for its next run).
4. **idle, push only**: the cron-only DAGs paused, ``--push-minutes``: what holding the IDLE sessions
   costs per push workspace-hour.
5. **idle, all workspaces**: the cron-only DAGs on again, ``--idle-minutes`` (default one whole ``*/15``
   cycle): CPU per idle run.

Sampled every ``--sample`` seconds: the triggerer's memory and threads, IMAP sessions per mailbox
(``doveadm who``), Postgres connections; CPU per component (and Postgres, Dovecot) at each phase's
ends; from StatsD (Airflow's metrics, received by this harness over UDP): the scheduler's loop time
and the DAG file's parse time. Ends with the exactly-once verdict of ``make scale`` (every attachment
once, the killed worker's tasks retried, nothing stuck, no flag changed, nothing left running).

    python -m bench.scale_large [--workspaces 1000 --minutes 8 --per-minute 20] [--write]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.scale import Deliveries, conclude, judge, kill_until_interrupted, wait_for_drain, wait_for_retries
from bench.scale_large_figures import Metrics, Probe, Timeline, figures, render
from bench.servers import Servers, servers
from devstack.airflow_cluster import AirflowCluster, celery_settings, celery_worker
from devstack.dovecot import append_messages
from devstack.samples import PO_CSV_EN, message

RESULTS = Path(__file__).resolve().parent / "results" / "scale_large.json"


def plan(workspaces: int, catchalls: int, per_catchall: int) -> list[int]:
    """The mailbox of each workspace: ``catchalls`` mailboxes shared by ``per_catchall`` workspaces, one each for the rest."""
    shared = min(workspaces, catchalls * per_catchall)
    owners = [n // per_catchall for n in range(shared)]
    return owners + [catchalls + n for n in range(workspaces - shared)]


def slug(n: int, push: bool) -> str:
    return f"{'p' if push else 'c'}{n:04d}"


#: ``--pools shared``: the pool of the workspaces alone on their mailbox (a workspace polls one at a time
#: anyway: max_active_runs=1); a mailbox several workspaces share keeps a pool of its own.
SINGLE_POOL = "imap_intake__single_workspace_mailboxes"


def shared_mailboxes(owners: list[int]) -> set[int]:
    """The mailboxes of more than one workspace (the catch-alls)."""
    return {box for box, count in collections.Counter(owners).items() if count > 1}


def pool_names(owners: list[int], pools: str) -> dict[int, str]:
    """Mailbox -> its workspaces' pool: one per mailbox (``mailbox``, the default of a workspace without
    ``pool:``), or one per shared mailbox and one for all the others (``shared``)."""
    shared = shared_mailboxes(owners)
    return {box: f"imap_intake__imap_mb{box}" if pools == "mailbox" or box in shared else SINGLE_POOL for box in set(owners)}


def workspaces_yaml(root: Path, owners: list[int], pushed: set[int], *, cron: str, push_cron: str, import_tasks: int,
                    pools: dict[int, str]) -> str:
    shared = shared_mailboxes(owners)
    lines = ["workspaces:"]
    for n, box in enumerate(owners):
        push = box in pushed
        name = slug(n, push)
        recipients = f", recipients: [{name}@orders.example]" if box in shared else ""
        lines.append(f"  - {{slug: {name}, imap_conn_id: imap_mb{box}, schedule: '{push_cron if push else cron}', "
                     f"push: {str(push).lower()}, start_date: 2026-01-01, storage_base: 'file://{root}/store', "
                     f"default_supplier: Scale supplier, pool: {pools[box]}, import_tasks: {import_tasks}{recipients}}}")
    return "\n".join(lines) + "\n"


def deliver(found: Servers, boxes: list[str], owners: list[int], pushed: set[int], per_minute: float, until: float,
            out: Deliveries, appended: dict[str, tuple[float, bool]], rng: random.Random) -> None:
    """Append one- or two-order messages at a steady rate to random workspaces until ``until`` (monotonic);
    ``appended``: order number -> (when it was appended, whether its workspace is push)."""
    seq = 0
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            n = rng.randrange(len(owners))
            push = owners[n] in pushed
            name = slug(n, push)
            attachments, numbers = [], []
            for _ in range(1 if rng.random() < 0.7 else 2):
                seq += 1
                number = f"SL-{seq:05d}"
                numbers.append(number)
                attachments.append((f"{number}.csv", "text/csv", PO_CSV_EN.replace(b"PO-7731", number.encode())))
            mail = message(sender="buyer@acme.example", to=f"{name}@orders.example", subject=f"Orders for {name}", attachments=attachments)
            append_messages(found.dovecot, boxes[owners[n]], [(mail.as_bytes(), None)])
            now = time.time()
            with out.lock:
                for number in numbers:
                    out.orders[number] = (name, f"{number}.csv")
                    appended[number] = (now, push)
                out.messages += 1
            time.sleep(max(0.0, 60.0 / per_minute - (time.monotonic() - started)))
    except Exception as error:  # noqa: BLE001 - reported by the verdict, the run goes on to clean up
        out.error = f"{type(error).__name__}: {error}"


def first_sync(found: Servers, workspaces_file: Path, boxes: list[str], owners: list[int], names: list[str]) -> float:
    """Each workspace's first poll, done here in-process by the same poll function its DAG's task calls
    (the mailboxes are still empty): the ledger then holds a cursor per workspace, as in a deployment
    that has been running. A first sync through Airflow costs a worker task process per workspace
    (1,000 of them on 2 cores: most of an hour), which is not what this run measures. Returns seconds."""
    import datetime as dt

    from imap_intake.service.poll import poll
    from imap_intake.store.storage import AttachmentStore
    from imap_intake.workspaces import read_workspaces

    started = time.monotonic()
    by_slug = {w.slug: w for w in read_workspaces(workspaces_file)}
    with psycopg.connect(found.postgres.dsn) as connection:
        for n, name in enumerate(names):
            workspace = by_slug[name]
            settings = found.dovecot.connection_settings(boxes[owners[n]], conn_id=workspace.imap_conn_id)
            store = AttachmentStore(workspace.storage_base)
            poll(workspace, settings, connection=connection, store=store, probe_store=store.probe, now=dt.datetime.now(dt.UTC))
    return time.monotonic() - started


def wait_for_first_runs(meta: psycopg.Connection[Any], dags: int, timeout: float) -> None:
    """Until every DAG has a finished run and no run is queued or running."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        done, active = meta.execute("SELECT count(DISTINCT dag_id) FILTER (WHERE state IN ('success', 'failed')), "
                                    "count(*) FILTER (WHERE state IN ('queued', 'running')) FROM dag_run").fetchone() or (0, 0)
        if done != last:
            print(f"scale-large: warm-up: {done} of {dags} workspaces polled once, {active} runs active", flush=True)
            last = done
        if done >= dags and not active:
            return
        time.sleep(10)
    raise TimeoutError(f"the first runs of {dags} workspaces did not finish in {timeout:.0f} s")


def wait_for_watchers(meta: psycopg.Connection[Any], count: int, timeout: float) -> float:
    """Until ``count`` new-mail watchers are assigned to the triggerer. Airflow creates a watcher's trigger
    when it parses the DAG file of an unpaused DAG: up to ``min_file_process_interval`` after the toggle.
    Returns seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        row = meta.execute("SELECT count(DISTINCT t.id) FROM asset_watcher w JOIN trigger t ON t.id = w.trigger_id "
                           "WHERE t.triggerer_id IS NOT NULL").fetchone()
        if row and row[0] >= count:
            return time.monotonic() - started
        time.sleep(5)
    raise TimeoutError(f"{count} new-mail watchers not running after {timeout:.0f} s")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--catchalls", type=int, default=5)
    parser.add_argument("--per-catchall", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="task slots per worker")
    parser.add_argument("--cron", default="*/15 * * * *", help="cron-only workspaces' schedule")
    parser.add_argument("--push-cron", default="0 */6 * * *", help="push workspaces' safety-net schedule")
    parser.add_argument("--import-tasks", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=5, help="how long mail is delivered")
    parser.add_argument("--per-minute", type=float, default=20, help="messages delivered per minute")
    parser.add_argument("--idle-minutes", type=float, default=15, help="all workspaces idle (one */15 cycle)")
    parser.add_argument("--push-minutes", type=float, default=5, help="only push workspaces on, idle")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples")
    parser.add_argument("--parse-interval", type=int, default=300,
                        help="[dag_processor] min_file_process_interval (Airflow's default 30: a third of a core for 1,000 DAGs)")
    parser.add_argument("--triggerer-capacity", type=int, default=2000, help="[triggerer] capacity (Airflow's default 1,000)")
    parser.add_argument("--pools", choices=("shared", "mailbox"), default="shared",
                        help="shared: a pool per mailbox several workspaces share, one for the rest; mailbox: a pool per mailbox "
                             "(a workspace's default); with StatsD on, Airflow's scheduler sends five gauges per pool every "
                             "pool_metrics_interval (python -m bench.idle_scheduler)")
    parser.add_argument("--write", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one scenario, phase after phase
    args = arguments(argv)
    from bench.scale_checks import server_pids

    owners = plan(args.workspaces, args.catchalls, args.per_catchall)
    mailboxes = max(owners) + 1
    pushed = set(range(0, mailboxes, 2))
    pools = pool_names(owners, args.pools)
    push_workspaces = sum(1 for box in owners if box in pushed)
    rng = random.Random(1000)
    out, appended = Deliveries(), dict[str, tuple[float, bool]]()
    report: dict[str, Any] = {
        "command": "make scale-1000" if args.workspaces == 1000 else f"python -m bench.scale_large --workspaces {args.workspaces}",
        "workspaces": args.workspaces, "mailboxes": mailboxes, "push_workspaces": push_workspaces, "push_mailboxes": len(pushed),
        "catchalls": f"{args.catchalls} x {args.per_catchall}", "workers": args.workers, "concurrency": args.concurrency,
        "cron": args.cron, "push_cron": args.push_cron, "import_tasks": args.import_tasks, "parse_interval": args.parse_interval,
        "triggerer_capacity": args.triggerer_capacity, "pools": args.pools, "pool_count": len(set(pools.values())),
        "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
    with servers("imap-intake-scale-large-", redis=True, imap_sessions=max(200, 2 * mailboxes), pg_connections=400) as found:
        assert found.redis is not None
        root = found.root
        tag = secrets.token_hex(2)
        boxes = [f"mb{box}-{tag}@scale.test" for box in range(mailboxes)]
        (root / "workspaces.yaml").write_text(workspaces_yaml(root, owners, pushed, cron=args.cron, push_cron=args.push_cron,
                                                              import_tasks=args.import_tasks, pools=pools))
        metadata = found.postgres.create_database("airflow_scale")
        metrics = Metrics()
        metrics.start()
        env = {"IMAP_INTAKE_WORKSPACES_FILE": str(root / "workspaces.yaml"), "AIRFLOW_CONN_IMAP_INTAKE_DB": found.ledger_connection(),
               **celery_settings(found.redis.url, metadata),
               "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
               "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
               # Airflow's defaults, where the test clusters (devstack) set others for speed:
               "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
               "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
               "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(args.parse_interval),
               # Airflow's default, 1,000 triggers, is full with the idle checks of one */15 instant: the
               # new-mail watchers would wait behind them (seen at 1,000 workspaces).
               "AIRFLOW__TRIGGERER__CAPACITY": str(args.triggerer_capacity),
               **metrics.airflow_settings()}
        workers = [celery_worker(f"worker-{n}", concurrency=args.concurrency) for n in range(1, args.workers + 1)]
        cluster = found.cluster = AirflowCluster.create(root / "airflow", metadata, extra_env=env,
                                                        components=("api-server", "scheduler", "dag-processor", "triggerer", *workers))
        print(f"scale-large: {args.workspaces} workspaces ({push_workspaces} push) over {mailboxes} mailboxes; preparing Airflow",
              flush=True)
        cluster.migrate()
        (root / "connections.json").write_text(json.dumps({f"imap_mb{box}": json.loads(found.imap_connection(user))
                                                           for box, user in enumerate(boxes)}))
        cluster.airflow("connections", "import", str(root / "connections.json"), timeout=900)
        (root / "pools.json").write_text(json.dumps({
            name: {"slots": 128 if name == SINGLE_POOL else 4, "description": "IMAP sessions"} for name in set(pools.values())}))
        cluster.airflow("pools", "import", str(root / "pools.json"), timeout=900)
        cluster.start()
        names = [slug(n, box in pushed) for n, box in enumerate(owners)]
        cluster.wait_for_dag(f"imap_intake__{names[-1]}", timeout=900)
        meta = psycopg.connect(metadata.replace("postgresql+psycopg2://", "postgresql://"), autocommit=True)
        ledger = psycopg.connect(found.postgres.dsn, autocommit=True)
        from imap_intake.store import db

        db.migrate(ledger)
        report["first_sync_s"] = round(first_sync(found, root / "workspaces.yaml", boxes, owners, names), 1)
        print(f"scale-large: first sync of every workspace in-process: {report['first_sync_s']} s", flush=True)
        measured = [c if isinstance(c, str) else c.name for c in cluster.components]
        probe = Probe(found, cluster, boxes, {"ledger": found.postgres.database, "airflow": "airflow_scale"}, interval=args.sample)
        probe.start()
        timeline = Timeline(cluster, measured, found)
        timeline.mark("warm-up")
        cluster.airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", r"^imap_intake__[pc]\d+$", timeout=900)
        wait_for_first_runs(meta, args.workspaces, timeout=3600)
        report["watchers_started_after_s"] = round(wait_for_watchers(meta, len(pushed), timeout=args.parse_interval + 600))
        time.sleep(30)  # each watcher's session: connect, sign in, EXAMINE, IDLE
        timeline.mark("load")
        print(f"scale-large: warm-up done in {timeline.minutes('warm-up'):.1f} min; delivering {args.per_minute:g} messages "
              f"a minute for {args.minutes:g} min", flush=True)
        until = time.monotonic() + args.minutes * 60
        delivery = threading.Thread(target=deliver, args=(found, boxes, owners, pushed, args.per_minute, until, out, appended, rng),
                                    daemon=True)
        delivery.start()
        time.sleep(args.minutes * 60 * 0.4)
        kill = kill_until_interrupted(cluster, meta, workers[0], restart_after=20, timeout=600)
        delivery.join()
        timeline.mark("drain")
        print(f"scale-large: delivered {out.messages} messages with {len(out.orders)} orders; draining", flush=True)
        wait_for_drain(ledger, out, timeout=3600)
        wait_for_retries(meta, kill, timeout=900)
        # Push only first: right after the drain a */15 boundary has just passed, so pausing the cron-only
        # DAGs skips none of their runs; then they are on again for one whole cycle, all idle.
        timeline.mark("push-only")
        cluster.airflow("dags", "pause", "--treat-dag-id-as-regex", "-y", r"^imap_intake__c\d+$", timeout=900)
        print(f"scale-large: drained in {timeline.minutes('drain'):.1f} min; cron-only workspaces paused; idle, push only, "
              f"{args.push_minutes:g} min", flush=True)
        time.sleep(args.push_minutes * 60)
        cluster.airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", r"^imap_intake__c\d+$", timeout=900)
        timeline.mark("idle")
        print(f"scale-large: idle, all workspaces, {args.idle_minutes:g} min", flush=True)
        time.sleep(args.idle_minutes * 60)
        timeline.mark("end")
        probe.stop()
        metrics.stop()
        interrupted = {dag_id.removeprefix("imap_intake__") for dag_id, *_ in kill["interrupted"]}
        report["figures"] = figures(meta, ledger, probe, metrics, timeline, appended=appended, orders=out.orders, interrupted=interrupted,
                                    push_workspaces=push_workspaces, workers=[w.name for w in workers])
        report["delivered"] = {"messages": out.messages, "orders": len(out.orders), "minutes": args.minutes, "per_minute": args.per_minute}
        verdict = judge(report, meta, ledger, found, boxes, out, kill)
        groups, pids = list(cluster.pgids.values()), server_pids(found)
    return conclude(report, verdict, found.root, groups, pids, results=RESULTS if args.write else None, render=render)


if __name__ == "__main__":
    sys.exit(main())

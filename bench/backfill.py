"""How long `airflow backfill create` takes for a month of the demo workspace's */15 schedule.

A real Airflow (api-server, scheduler with LocalExecutor, dag-processor; metadata in Postgres),
a Dovecot folder with mail spread over the month, and the command a user types:

    airflow backfill create --dag-id imap_intake__<slug> --from-date 2026-03-01 --to-date 2026-03-31

Prints one JSON object: runs, seconds, IMAP sessions (backfill polls that read the folder),
covered runs, attachments stored. ``python -m bench.backfill --days 31`` (what make bench runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import secrets
import statistics
import time
from pathlib import Path

from bench.servers import servers
from devstack.airflow_cluster import AirflowCluster
from devstack.dovecot import append_messages
from devstack.samples import PO_CSV_EN, message
from imap_intake.store import db


def month_of_mail(user: str, start: dt.datetime, days: int, count: int) -> list[tuple[bytes, dt.datetime]]:
    rng = random.Random(7)
    mail = []
    for n in range(count):
        when = start + dt.timedelta(seconds=rng.randrange(days * 86400))
        raw = message(sender="buyer@acme.example", to=user, subject=f"PO {n}", date=when,
                      attachments=[(f"po-{n}.csv", "text/csv", PO_CSV_EN + str(n).encode())]).as_bytes()
        mail.append((raw, when))
    return mail


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--max-active-runs", type=int, default=192)
    parser.add_argument("--import-tasks", type=int, default=2)
    parser.add_argument("--runs-per-loop", type=int, default=256,
                        help="[scheduler] max_dagruns_per_loop_to_schedule (how many running runs one scheduler loop examines)")
    parser.add_argument("--write", action="store_true", help="keep the figures in bench/results/backfill.json for docs/benchmarks.md")
    args = parser.parse_args()
    with servers("imap-intake-bench-backfill-") as found:
        root, postgres, dovecot = found.root, found.postgres, found.dovecot
        user = f"backfill{secrets.token_hex(3)}@example.test"
        start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        append_messages(dovecot, user, month_of_mail(user, start, args.days, args.messages))
        slug = "bench_backfill"
        workspaces = root / "workspaces.yaml"
        workspaces.write_text(
            "workspaces:\n"
            f"  - {{slug: {slug}, imap_conn_id: imap_bench, schedule: '*/15 * * * *', start_date: 2026-01-01, "
            f"storage_base: 'file://{root}/store', default_supplier: Someone, pool: default_pool, import_tasks: {args.import_tasks}}}\n"
        )
        env = {"IMAP_INTAKE_WORKSPACES_FILE": str(workspaces), "AIRFLOW_CONN_IMAP_INTAKE_DB": found.ledger_connection(),
               "AIRFLOW_CONN_IMAP_BENCH": found.imap_connection(user)}
        if args.runs_per_loop:
            env["AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE"] = str(args.runs_per_loop)
        cluster = found.cluster = AirflowCluster.create(root / "airflow", postgres.create_database("airflow"), extra_env=env)
        cluster.migrate()
        cluster.start()
        dag_id = f"imap_intake__{slug}"
        cluster.wait_for_dag(dag_id)
        last = start + dt.timedelta(days=args.days)  # "re-check March": 03-01 to 04-01, both ends included
        cluster.airflow("dags", "unpause", dag_id)  # switched on, it polls its latest interval at once: the cursor
        cursor_before = _wait_for_cursor(postgres.dsn, slug)
        began = time.monotonic()
        cluster.airflow("backfill", "create", "--dag-id", dag_id, "--from-date", start.date().isoformat(),
                        "--to-date", last.date().isoformat(), "--max-active-runs", str(args.max_active_runs))
        metadata_dsn = postgres.dsn.rsplit("/", 1)[0] + "/airflow"
        with db.connect_dsn(metadata_dsn) as airflow_db:
            expected = int(airflow_db.execute("SELECT count(*) FROM backfill_dag_run").fetchone()[0])  # type: ignore[index]
        running: list[int] = []  # runs in state running, sampled every 2 s: is the month bound by --max-active-runs?
        with db.connect_dsn(postgres.dsn) as connection, db.connect_dsn(metadata_dsn) as airflow_db:
            while True:  # every backfill run finished (a covered run ends in the triggerer, without a poll row)
                counts = dict(airflow_db.execute(
                    "SELECT state, count(*) FROM dag_run WHERE dag_id=%s AND run_type='backfill' GROUP BY 1", (dag_id,)).fetchall())
                finished = int(counts.get("success", 0)) + int(counts.get("failed", 0))
                if finished >= expected:
                    break
                running.append(int(counts.get("running", 0)))
                if time.monotonic() - began > 4 * 3600:
                    raise TimeoutError(f"backfill not done after 4 h: {finished} of {expected} runs")
                time.sleep(2)
            seconds = time.monotonic() - began
            rows = dict(connection.execute(
                "SELECT status, count(*) FROM imap_intake.poll WHERE workspace=%s AND mode='backfill' GROUP BY 1", (slug,)
            ).fetchall()) if _has_ledger(connection) else {}
            states = dict(airflow_db.execute(
                "SELECT ti.state, count(*) FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id "
                "WHERE ti.dag_id=%s AND r.run_type='backfill' AND ti.task_id='poll_mailbox' GROUP BY 1", (dag_id,)).fetchall())
            workers = int(airflow_db.execute(
                "SELECT count(*) FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id "
                "WHERE ti.dag_id=%s AND r.run_type='backfill' AND ti.pid IS NOT NULL", (dag_id,)).fetchone()[0])  # type: ignore[index]
            attachments = connection.execute("SELECT count(*) FROM imap_intake.attachment WHERE workspace=%s", (slug,)).fetchone()
            cursor_after = _cursor(connection, slug)
            recorded = connection.execute("SELECT count(*), count(DISTINCT (uidvalidity, uid)) FROM imap_intake.message WHERE workspace=%s",
                                          (slug,)).fetchone()
            durations = [float(r[0]) for r in airflow_db.execute(
                "SELECT extract(epoch FROM end_date - start_date) FROM dag_run WHERE dag_id=%s AND run_type='backfill' "
                "AND end_date IS NOT NULL AND start_date IS NOT NULL", (dag_id,)).fetchall()]
            failed_runs = int(airflow_db.execute("SELECT count(*) FROM dag_run WHERE dag_id=%s AND run_type='backfill' AND state='failed'",
                                                 (dag_id,)).fetchone()[0])  # type: ignore[index]
        figures = {
            "days": args.days, "messages": args.messages, "runs": expected, "seconds": round(seconds, 1),
            "runs_per_minute": round(expected / seconds * 60, 1) if expected else None,
            "imap_sessions": rows.get("ok", 0), "covered_runs": rows.get("covered", 0) + states.get("skipped", 0),
            "covered_in_triggerer": states.get("skipped", 0), "task_processes_on_workers": workers,
            "failed": rows.get("failed", 0), "failed_runs": failed_runs,
            "attachments_stored": attachments[0] if attachments else 0, "max_active_runs": args.max_active_runs,
            "cursor_before": cursor_before, "cursor_after": cursor_after, "cursor_unchanged": cursor_before == cursor_after,
            "messages_recorded": recorded[0] if recorded else 0, "messages_recorded_distinct": recorded[1] if recorded else 0,
            "running_runs_median": statistics.median(running) if running else None,
            "run_seconds_median": round(statistics.median(durations), 2) if durations else None,
            "scheduler_settings": {k.removeprefix("AIRFLOW__SCHEDULER__").lower(): v for k, v in cluster.env.items()
                                   if k.startswith("AIRFLOW__SCHEDULER__")},
            "command": f"airflow backfill create --dag-id {dag_id} --from-date {start.date()} --to-date {last.date()} "
                       f"--max-active-runs {args.max_active_runs}",
            "run_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        print(json.dumps(figures))
        if args.write:
            out = Path(__file__).resolve().parent / "results" / "backfill.json"
            out.write_text(json.dumps(figures, indent=2) + "\n")


def _cursor(connection: object, slug: str) -> list[int] | None:
    if not _has_ledger(connection):
        return None
    row = connection.execute("SELECT uidvalidity, last_uid FROM imap_intake.cursor WHERE workspace=%s", (slug,)).fetchone()  # type: ignore[attr-defined]
    return [int(row[0]), int(row[1])] if row else None


def _wait_for_cursor(dsn: str, slug: str, timeout: float = 300) -> list[int] | None:
    """The cursor once the switched-on DAG's first regular poll has finished (it moves the cursor
    batch by batch while it runs): what the backfill must leave alone."""
    deadline = time.monotonic() + timeout
    with db.connect_dsn(dsn) as connection:
        while time.monotonic() < deadline:
            done = _has_ledger(connection) and connection.execute(
                "SELECT 1 FROM imap_intake.poll WHERE workspace=%s AND mode <> 'backfill' AND status = 'ok'", (slug,)).fetchone()
            if done:
                return _cursor(connection, slug)
            time.sleep(1)
    raise TimeoutError(f"the first regular poll of {slug} did not finish in {timeout:.0f} s")


def _has_ledger(connection: object) -> bool:
    row = connection.execute("SELECT to_regclass('imap_intake.poll')").fetchone()  # type: ignore[attr-defined]
    return bool(row and row[0])


if __name__ == "__main__":
    main()

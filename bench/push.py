"""Delivery -> attachment stored with push (IMAP IDLE through Airflow's triggerer), and the IDLE
sessions held for 50 push workspaces on one mailbox.

A real Airflow (api-server, scheduler with LocalExecutor, dag-processor, triggerer; metadata in
Postgres), Dovecot with two mailboxes: one push workspace on mailbox A receives the deliveries one
at a time; fifty push workspaces share mailbox B, which receives nothing. Where the time goes comes
from the timestamps Airflow and the ledger record: the asset event (triggerer), the DAG run's
queued and start times (scheduler), the poll task's start and end (worker), the attachment row.

    python -m bench.push --deliveries 20 --write
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.servers import servers
from devstack.airflow_cluster import AirflowCluster
from devstack.dovecot import DovecotServer, append_messages
from devstack.samples import PO_CSV_EN, message

RESULTS = Path(__file__).resolve().parent / "results" / "push.json"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _sessions(dovecot: DovecotServer, user: str) -> int:
    done = subprocess.run(["doveadm", "-c", str(dovecot.config_path), "who", "-1", user], capture_output=True, text=True, timeout=30)
    return sum(1 for line in done.stdout.splitlines() if line.startswith(user))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=20)
    parser.add_argument("--siblings", type=int, default=50)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with servers("imap-intake-bench-push-") as found:
        root, postgres, dovecot = found.root, found.postgres, found.dovecot
        single, shared = f"pusha{secrets.token_hex(2)}@bench.test", f"pushb{secrets.token_hex(2)}@bench.test"
        for user in (single, shared):
            dovecot.add_user(user)
        lines = ["workspaces:", f"  - {{slug: pushed, imap_conn_id: imap_a, push: true, schedule: '0 6 1 1 *', start_date: 2026-01-01, "
                 f"storage_base: 'file://{root}/store', default_supplier: Bench, pool: default_pool, import_tasks: 1}}"]
        lines += [f"  - {{slug: sibling{n}, imap_conn_id: imap_b, push: true, schedule: '0 6 1 1 *', start_date: 2026-01-01, "
                  f"storage_base: 'file://{root}/store', default_supplier: Bench, pool: default_pool, import_tasks: 1, "
                  f"recipients: [s{n}@bench.test]}}" for n in range(args.siblings)]
        (root / "workspaces.yaml").write_text("\n".join(lines) + "\n")
        env = {"IMAP_INTAKE_WORKSPACES_FILE": str(root / "workspaces.yaml"), "AIRFLOW_CONN_IMAP_INTAKE_DB": found.ledger_connection(),
               "AIRFLOW_CONN_IMAP_A": found.imap_connection(single), "AIRFLOW_CONN_IMAP_B": found.imap_connection(shared)}
        metadata = postgres.create_database("airflow_push")
        cluster = found.cluster = AirflowCluster.create(root / "airflow", metadata, extra_env=env,
                                        components=("api-server", "scheduler", "dag-processor", "triggerer"))
        cluster.migrate()
        cluster.start()
        dags = ["imap_intake__pushed"] + [f"imap_intake__sibling{n}" for n in range(args.siblings)]
        cluster.wait_for_dag(dags[-1], timeout=300)
        for dag_id in dags:
            cluster.airflow("dags", "unpause", dag_id)
        log = cluster.logs["triggerer"]
        deadline = time.monotonic() + 300
        while log.read_text(errors="replace").count("for new mail (IDLE)") < 2:
            assert time.monotonic() < deadline, "the triggerer did not start both watches"
            time.sleep(1)
        time.sleep(5)
        sessions = {"workspaces_on_mailbox_b": args.siblings, "idle_sessions_mailbox_b": _sessions(dovecot, shared),
                    "idle_sessions_mailbox_a": _sessions(dovecot, single)}
        print("bench: sessions", sessions, flush=True)
        meta = psycopg.connect(metadata.replace("postgresql+psycopg2://", "postgresql://"), autocommit=True)
        ledger = psycopg.connect(postgres.dsn, autocommit=True)
        from imap_intake.store import db

        db.migrate(ledger)  # no poll has run yet: the tables may not exist
        rows = []
        for n in range(args.deliveries):
            name = f"push-{n}.csv"
            order = message(sender="buyer@acme.example", to=single, subject=f"push {n}", attachments=[(name, "text/csv", PO_CSV_EN + str(n).encode())])
            delivered = time.time()
            append_messages(dovecot, single, [(order.as_bytes(), None)])
            stored = None
            while stored is None:
                found = ledger.execute("SELECT extract(epoch FROM created_at) FROM imap_intake.attachment WHERE workspace='pushed' "
                                       "AND original_filename=%s", (name,)).fetchone()
                if found:
                    stored = time.time()
                    break
                assert time.time() - delivered < 120, f"delivery {n} not stored after 120 s"
                time.sleep(0.05)
            run = meta.execute(
                "SELECT extract(epoch FROM r.queued_at), extract(epoch FROM r.start_date), extract(epoch FROM t.start_date), "
                "extract(epoch FROM t.end_date) FROM dag_run r JOIN task_instance t ON t.dag_id = r.dag_id AND t.run_id = r.run_id "
                "AND t.task_id = 'poll_mailbox' WHERE r.dag_id = 'imap_intake__pushed' AND r.run_type = 'asset_triggered' "
                "AND r.queued_at >= to_timestamp(%s) ORDER BY r.queued_at LIMIT 1", (delivered - 1,)).fetchone()
            event = meta.execute(
                "SELECT extract(epoch FROM e.timestamp) FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE a.name = 'imap_intake__new_mail__imap_a__default' AND e.timestamp >= to_timestamp(%s) ORDER BY e.timestamp LIMIT 1",
                (delivered - 1,)).fetchone()
            row = {"total_s": round(stored - delivered, 2)}
            if event and run and run[2]:
                row.update({"to_asset_event_s": round(float(event[0]) - delivered, 2), "to_run_queued_s": round(float(run[0]) - delivered, 2),
                            "to_poll_started_s": round(float(run[2]) - delivered, 2)})
            rows.append(row)
            print("bench: delivery", n, row, flush=True)
            while meta.execute("SELECT count(*) FROM dag_run WHERE dag_id='imap_intake__pushed' AND state IN ('queued', 'running')").fetchone()[0]:
                time.sleep(0.2)  # one delivery at a time: the run finished (imports, publish) before the next
            time.sleep(1)
        totals = [r["total_s"] for r in rows]

        def median(key: str) -> float | None:
            values = [r[key] for r in rows if key in r]
            return round(statistics.median(values), 2) if values else None

        result: dict[str, Any] = {
            "deliveries": len(rows), "p50_s": round(_percentile(totals, 0.5), 2), "p95_s": round(_percentile(totals, 0.95), 2),
            "max_s": round(max(totals), 2), "median_to_asset_event_s": median("to_asset_event_s"),
            "median_to_run_queued_s": median("to_run_queued_s"), "median_to_poll_started_s": median("to_poll_started_s"),
            **sessions, "command": "make bench-push",
        }
        print(json.dumps(result), flush=True)
        if args.write:
            RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

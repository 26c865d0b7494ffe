"""The figures of ``make scale``: what the cluster did per minute, how long tasks waited in the
queue, the CPU an idle poll costs end to end, and the peaks of Postgres connections and IMAP
sessions (sampled every second while it ran). Rendered into docs/scaling.md."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.servers import Servers
from devstack.airflow_cluster import AirflowCluster


class Sampler(threading.Thread):
    """Every second: Postgres connections per database, IMAP sessions per mailbox; keeps the peaks."""

    def __init__(self, found: Servers, mailboxes: list[str], databases: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.found, self.mailboxes, self.databases = found, mailboxes, databases
        self.pg_peak: Counter[str] = Counter()
        self.imap_peak: Counter[str] = Counter()
        self.imap_total_peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.found.postgres.dsn, autocommit=True) as connection:
            while not self._stop_event.wait(1.0):
                for label, count in postgres_connections(connection, self.databases).items():
                    self.pg_peak[label] = max(self.pg_peak[label], count)
                sessions = imap_sessions(self.found)
                for user, count in sessions.items():
                    self.imap_peak[user] = max(self.imap_peak[user], count)
                self.imap_total_peak = max(self.imap_total_peak, sum(sessions.values()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def imap_sessions(found: Servers, *, timeout: float = 30) -> Counter[str]:
    """IMAP sessions open now, per user (``doveadm who``)."""
    done = subprocess.run(["doveadm", "-c", str(found.dovecot.config_path), "who", "-1"], capture_output=True, text=True,
                          timeout=timeout)
    return Counter(line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip())


def postgres_connections(connection: psycopg.Connection[Any], databases: dict[str, str]) -> dict[str, int]:
    """Client connections now, per label of ``databases`` (label -> database name)."""
    rows = dict(connection.execute("SELECT datname, count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                   "AND datname IS NOT NULL GROUP BY datname").fetchall())
    return {label: rows.get(database, 0) for label, database in databases.items()}


def cpu_seconds(cluster: AirflowCluster, names: list[str]) -> dict[str, float]:
    """CPU seconds (user + system, with reaped children: the task processes) of each component's live processes."""
    totals = {}
    for name in names:
        total = 0.0
        for pid in cluster.component_pids(name):
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        totals[name] = total
    return totals


def _one(connection: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> Any:
    row = connection.execute(sql, params).fetchone()
    return row[0] if row else None


def figures(meta: psycopg.Connection[Any], ledger: psycopg.Connection[Any], sampler: Sampler, *, window: tuple[float, float],
            idle: tuple[float, float], cpu: tuple[dict[str, float], dict[str, float]], workers: list[str]) -> dict[str, Any]:
    start, end = window
    minutes = (end - start) / 60
    between = "BETWEEN to_timestamp(%s) AND to_timestamp(%s)"
    polls = _one(meta, f"SELECT count(*) FROM task_instance WHERE task_id = 'poll_mailbox' AND state = 'success' AND end_date {between}",
                 (start, end))
    tasks = _one(meta, f"SELECT count(*) FROM task_instance WHERE state = 'success' AND end_date {between}", (start, end))
    attachments = _one(ledger, f"SELECT count(*) FROM imap_intake.attachment WHERE created_at {between}", (start, end))
    orders = _one(ledger, f"SELECT count(*) FROM imap_intake.purchase_order WHERE created_at {between}", (start, end))
    latency = meta.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.95) WITHIN GROUP (ORDER BY s), max(s) FROM "
        f"(SELECT extract(epoch FROM start_date - queued_dttm) AS s FROM task_instance WHERE start_date {between} "
        # A poll resumed from its idle check keeps the start of its deferral, before it was queued for a worker.
        "AND queued_dttm IS NOT NULL AND start_date >= queued_dttm) q", (start, end)).fetchone()
    per_worker = dict(meta.execute(f"SELECT hostname, count(*) FROM task_instance WHERE start_date {between} AND hostname <> '' "
                                   "GROUP BY hostname ORDER BY hostname", (start, end)).fetchall())
    fanned = _one(meta, "SELECT count(*) FROM (SELECT dag_id, run_id FROM task_instance WHERE task_id LIKE 'import_orders%%' "
                  f"AND start_date {between} GROUP BY dag_id, run_id HAVING count(DISTINCT hostname) > 1) r", (start, end))
    idle_runs = _one(meta, f"SELECT count(*) FROM dag_run WHERE state = 'success' AND end_date {between}", idle)
    idle_polls_with_mail = _one(ledger, f"SELECT count(*) FROM imap_intake.poll WHERE started_at {between} AND fetched > 0", idle)
    # Polls of one mailbox at the same moment, exactly, from the ledger's poll rows (each poll holds one
    # IMAP session for its duration); the 1 s sampling of `doveadm who` misses sub-second sessions.
    at_once = dict(ledger.execute(
        "SELECT account, max(open) FROM (SELECT account, sum(d) OVER (PARTITION BY account ORDER BY t, d "
        "ROWS UNBOUNDED PRECEDING) AS open FROM (SELECT account, started_at AS t, 1 AS d FROM imap_intake.poll "
        f"WHERE started_at {between} UNION ALL SELECT account, finished_at, -1 FROM imap_intake.poll "
        f"WHERE started_at {between} AND finished_at IS NOT NULL) e) s GROUP BY account", (start, end, start, end)).fetchall())
    used = {name: round(cpu[1].get(name, 0) - cpu[0].get(name, 0), 1) for name in cpu[1]}
    scheduler_and_workers = used.get("scheduler", 0) + sum(used.get(w, 0) for w in workers)
    split = {"scheduler": used.get("scheduler", 0), "triggerer": used.get("triggerer", 0),
             "workers": round(sum(used.get(w, 0) for w in workers), 1), "dag-processor": used.get("dag-processor", 0),
             "api-server": used.get("api-server", 0)}
    per_run = {name: round(value / idle_runs, 3) for name, value in split.items()} if idle_runs else {}
    running = split["scheduler"] + split["triggerer"] + split["workers"]
    return {
        "load_minutes": round(minutes, 1),
        "polls_per_minute": round(polls / minutes, 1),
        "tasks_per_minute": round(tasks / minutes, 1),
        "attachments_per_minute": round(attachments / minutes, 1),
        "orders_per_minute": round(orders / minutes, 1),
        "queue_latency_s": {"p50": round(float(latency[0] or 0), 2), "p95": round(float(latency[1] or 0), 2),
                            "max": round(float(latency[2] or 0), 2)} if latency else None,
        "tasks_per_worker": per_worker,
        "runs_with_imports_on_two_workers": fanned,
        "idle": {"minutes": round((idle[1] - idle[0]) / 60, 1), "runs": idle_runs, "polls_that_found_mail": idle_polls_with_mail,
                 "cpu_seconds": used,
                 "cpu_s_per_run_scheduler_and_workers": round(scheduler_and_workers / idle_runs, 2) if idle_runs else None,
                 "cpu_s_per_run_with_api_server": round((scheduler_and_workers + used.get("api-server", 0)) / idle_runs, 2)
                 if idle_runs else None,
                 "cpu_s_per_run_scheduler_triggerer_workers": round(running / idle_runs, 3) if idle_runs else None,
                 "cpu_s_per_run_by_component": per_run},
        "postgres_connections_peak": dict(sampler.pg_peak),
        "polls_at_once_per_mailbox": {"max": max(at_once.values(), default=0), "by_mailbox": sorted(at_once.values(), reverse=True)},
        "imap_sessions_peak": {"per_mailbox_max": max(sampler.imap_peak.values(), default=0),
                               "by_mailbox": sorted(sampler.imap_peak.values(), reverse=True), "all_mailboxes": sampler.imap_total_peak},
    }


#: Where ``make scale --write`` keeps a run's report, by storage (an S3 run's table shows the disk run's beside it).
RESULTS = {"disk": Path(__file__).resolve().parent / "results" / "scale.json",
           "s3": Path(__file__).resolve().parent / "results" / "scale-s3.json"}


def markers(storage: str) -> tuple[str, str]:
    """The markers of a run's section in docs/scaling.md: the disk run's, or the S3 run's."""
    name = "make scale" + (" STORAGE=s3" if storage == "s3" else "")
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def _rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    f = report["figures"]
    idle, lat = f["idle"], f["queue_latency_s"]
    return [
        ("workspaces polled per minute (poll tasks finished)", f["polls_per_minute"]),
        ("task instances finished per minute", f["tasks_per_minute"]),
        ("attachments stored per minute", f["attachments_per_minute"]),
        ("orders imported per minute", f["orders_per_minute"]),
        ("task queue latency (queued → started), p50 / p95 / max", f"{lat['p50']} / {lat['p95']} / {lat['max']} s"),
        ("task instances per worker", ", ".join(f"{h}: {n}" for h, n in f["tasks_per_worker"].items())),
        ("runs whose two import tasks ran on two workers", f["runs_with_imports_on_two_workers"]),
        ("CPU per idle run, scheduler + triggerer + workers",
         f"{idle.get('cpu_s_per_run_scheduler_triggerer_workers')} core-s ("
         + ", ".join(f"{k} {v}" for k, v in idle.get("cpu_s_per_run_by_component", {}).items())
         + f"); {idle['runs']} idle runs in {idle['minutes']} min; polls start "
         + ("in the triggerer (idle check)" if report.get("start_in_triggerer", True) else "on a worker")),
        ("Postgres connections at peak", ", ".join(f"{db}: {n}" for db, n in f["postgres_connections_peak"].items())),
        ("IMAP sessions at peak per mailbox: polls at the same moment (ledger), max and by mailbox",
         f"{f['polls_at_once_per_mailbox']['max']} ({', '.join(map(str, f['polls_at_once_per_mailbox']['by_mailbox']))}); "
         "pool: 4 slots per mailbox"),
        ("IMAP sessions seen by `doveadm who` (sampled each second), per mailbox max / all mailboxes",
         f"{f['imap_sessions_peak']['per_mailbox_max']} / {f['imap_sessions_peak']['all_mailboxes']}"),
    ]


def render(report: dict[str, Any], path: Path) -> None:
    """Replace the run's measured section of docs/scaling.md (between its markers) with its figures;
    an S3 run's table shows the last disk run's figures (bench/results/scale.json) next to its own."""
    v, d, k = report["verdict"], report["delivered"], report["kill"]
    disk = RESULTS["disk"]
    beside = json.loads(disk.read_text()) if report.get("storage") == "s3" and disk.exists() else None
    begin, end = markers(report.get("storage", "disk"))
    if beside is None:
        table = ["| figure | measured |", "|---|---|", *[f"| {name} | {value} |" for name, value in _rows(report)]]
    else:
        table = [f"| figure | S3 (`{report['command']}`, {report['date']}) | disk (`{beside['command']}`, {beside['date']}) |",
                 "|---|---|---|",
                 *[f"| {name} | {value} | {other} |" for (name, value), (_, other) in zip(_rows(report), _rows(beside), strict=True)]]
    storage = ("Attachments in a bucket of a local S3 server (moto's server mode, over HTTP on loopback) through an Airflow "
               "`aws` connection; every stored attachment read back from the bucket by the check. ") if report.get("storage") == "s3" else ""
    section = [
        begin,
        f"Measured by `{report['command']}` ({report['date']}, {report['cores']} cores, one machine): {report['workspaces']} workspaces "
        f"over {report['mailboxes']} mailboxes, CeleryExecutor with Redis, {report['workers']} workers × {report['concurrency']} slots, "
        f"schedule `{report['schedule']}`, {report['import_tasks']} import tasks per run, scheduler idle sleep "
        f"{report.get('scheduler_idle_sleep', 0.2):g} s. {storage}{d['messages']} messages with "
        f"{d['orders']} orders appended over {d['minutes']:g} min while runs overlapped; `{k['worker']}` killed with SIGKILL "
        f"({k['processes_killed']} processes) while it ran {len(k['interrupted'])} task(s), restarted 20 s later. Rates are over "
        f"the {report['figures']['load_minutes']} min from the first delivery until everything was imported.",
        "",
        *table,
        "",
        f"Verdict: `{v['line']}`",
        end,
    ]
    text = path.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {begin} … {end} section to fill")
    path.write_text(pattern.sub(lambda _m: "\n".join(section), text))

"""What ``make scale-1000`` measures: CPU per component per phase, the triggerer's memory and
threads, IMAP sessions, Postgres connections, Airflow's own StatsD timings (scheduler loop, DAG
parse), delivery → stored latency for push and cron workspaces. Rendered into docs/scaling.md."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.scale_figures import cpu_seconds, imap_sessions, postgres_connections
from bench.servers import Servers
from devstack.airflow_cluster import AirflowCluster

#: The StatsD names kept (after the ``airflow.`` prefix).
KEPT = ("scheduler.scheduler_loop_duration", "dag_processing.last_duration", "triggers.running")


class Metrics(threading.Thread):
    """A StatsD receiver: Airflow's components send their metrics here over UDP (``[metrics] statsd_on``)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.values: list[tuple[float, str, float]] = []
        self._stop_event = threading.Event()

    def airflow_settings(self) -> dict[str, str]:
        return {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(self.port), "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
                "AIRFLOW__METRICS__METRICS_ALLOW_LIST": ",".join(KEPT)}

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            now = time.time()
            for line in data.decode(errors="replace").splitlines():
                name, _, rest = line.partition(":")
                name = name.removeprefix("airflow.")
                if name.startswith(KEPT):
                    try:
                        self.values.append((now, name, float(rest.split("|")[0])))
                    except ValueError:
                        continue

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.sock.close()

    def between(self, prefix: str, start: float, end: float) -> list[float]:
        return [value for t, name, value in self.values if name.startswith(prefix) and start <= t < end]


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds of a server: its master, its live children, and the children it has reaped."""
    if not pid:
        return 0.0
    try:
        master = psutil.Process(pid)
        times = master.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in master.children(recursive=True):
            try:
                t = child.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total
    except psutil.Error:
        return 0.0


def _postmaster(found: Servers) -> int | None:
    try:
        return int((found.postgres.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Timeline:
    """Phase marks: when each phase began and the CPU seconds of every component (and of Postgres, Dovecot) then."""

    def __init__(self, cluster: AirflowCluster, components: list[str], found: Servers) -> None:
        self.cluster, self.components, self.found = cluster, components, found
        self.marks: list[tuple[str, float, dict[str, float]]] = []

    def mark(self, name: str) -> None:
        cpu = cpu_seconds(self.cluster, self.components)
        cpu["postgres"] = _tree_cpu(_postmaster(self.found))
        cpu["dovecot"] = _tree_cpu(self.found.dovecot.pid())
        self.marks.append((name, time.time(), cpu))

    def window(self, name: str) -> tuple[float, float]:
        for (label, start, _), (_, end, _) in zip(self.marks, self.marks[1:], strict=False):
            if label == name:
                return start, end
        raise KeyError(name)

    def minutes(self, name: str) -> float:
        start, end = self.window(name)
        return (end - start) / 60

    def cpu(self, name: str) -> dict[str, float]:
        for (label, _, before), (_, _, after) in zip(self.marks, self.marks[1:], strict=False):
            if label == name:
                return {key: round(after.get(key, 0.0) - before.get(key, 0.0), 1) for key in after}
        raise KeyError(name)


class Probe(threading.Thread):
    """Every ``interval`` s: the triggerer's memory and threads, IMAP sessions per mailbox, Postgres connections."""

    def __init__(self, found: Servers, cluster: AirflowCluster, mailboxes: list[str], databases: dict[str, str], *, interval: float) -> None:
        super().__init__(daemon=True)
        self.found, self.cluster, self.mailboxes, self.databases, self.interval = found, cluster, mailboxes, databases, interval
        self.samples: list[dict[str, Any]] = []
        self.imap_peak: Counter[str] = Counter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.found.postgres.dsn, autocommit=True) as connection:
            while not self._stop_event.wait(self.interval):
                try:
                    self.samples.append(self._sample(connection))
                except (psycopg.Error, subprocess.SubprocessError, OSError):
                    continue

    def _sample(self, connection: psycopg.Connection[Any]) -> dict[str, Any]:
        rss, threads = 0, 0
        for pid in self.cluster.component_pids("triggerer"):
            try:
                process = psutil.Process(pid)
                rss += process.memory_info().rss
                threads += process.num_threads()
            except psutil.Error:
                continue
        sessions = imap_sessions(self.found, timeout=60)  # a thousand users
        for user, count in sessions.items():
            self.imap_peak[user] = max(self.imap_peak[user], count)
        return {"t": time.time(), "triggerer_rss_mb": rss / 2**20, "triggerer_threads": threads,
                "imap_sessions": sum(sessions.values()), "pg": postgres_connections(connection, self.databases)}

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [s for s in self.samples if start <= s["t"] < end]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"p50": _pct(values, 0.5), "p95": _pct(values, 0.95), "max": _pct(values, 1.0), "n": len(values)}


def _runs(meta: psycopg.Connection[Any], start: float, end: float) -> int:
    row = meta.execute("SELECT count(*) FROM dag_run WHERE state = 'success' AND end_date BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
                       (start, end)).fetchone()
    return int(row[0]) if row else 0


AIRFLOW_PARTS = ("scheduler", "triggerer", "workers")


def _split(cpu: dict[str, float], workers: list[str]) -> dict[str, float]:
    return {"scheduler": cpu.get("scheduler", 0.0), "triggerer": cpu.get("triggerer", 0.0),
            "workers": round(sum(cpu.get(w, 0.0) for w in workers), 1), "dag-processor": cpu.get("dag-processor", 0.0),
            "api-server": cpu.get("api-server", 0.0), "postgres": cpu.get("postgres", 0.0), "dovecot": cpu.get("dovecot", 0.0)}


def figures(meta: psycopg.Connection[Any], ledger: psycopg.Connection[Any], probe: Probe, metrics: Metrics, timeline: Timeline, *,
            appended: dict[str, tuple[float, bool]], orders: dict[str, tuple[str, str]], interrupted: set[str], push_workspaces: int,
            workers: list[str]) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    for name in ("warm-up", "load", "drain", "push-only", "idle"):
        start, end = timeline.window(name)
        cpu = _split(timeline.cpu(name), workers)
        samples = probe.between(start, end)
        minutes = (end - start) / 60
        phases[name] = {
            "minutes": round(minutes, 1), "runs": _runs(meta, start, end), "cpu_seconds": cpu,
            "cores_busy": round(sum(cpu.values()) / (end - start), 2),
            "scheduler_loop_ms": _spread(metrics.between("scheduler.scheduler_loop_duration", start, end)),
            # Not dag_processing.total_parse_time: it read 0.03 s for the 1,000-DAG file, not a parse of
            # it; the file's own processing time is last_duration (a timer, ms).
            "dag_file_parse_ms": _spread(metrics.between("dag_processing.last_duration", start, end)),
            "triggerer_rss_mb_max": round(max((s["triggerer_rss_mb"] for s in samples), default=0)),
            "triggerer_threads_max": max((s["triggerer_threads"] for s in samples), default=0),
            "imap_sessions_max": max((s["imap_sessions"] for s in samples), default=0),
            "imap_sessions_p50": _pct([s["imap_sessions"] for s in samples], 0.5),
            "postgres_connections_max": {label: max((s["pg"][label] for s in samples), default=0) for label in ("ledger", "airflow")},
        }
    idle, push = phases["idle"], phases["push-only"]
    airflow = lambda cpu: sum(cpu[part] for part in AIRFLOW_PARTS)  # noqa: E731
    per_run = round(airflow(idle["cpu_seconds"]) / idle["runs"], 3) if idle["runs"] else None
    push_hours = push_workspaces * push["minutes"] / 60
    holding = round(airflow(push["cpu_seconds"]) / push_hours, 3) if push_hours else None
    holding_with_parse = (round((airflow(push["cpu_seconds"]) + push["cpu_seconds"]["dag-processor"]) / push_hours, 3)
                          if push_hours else None)
    names = {f"{number}.csv": number for number in appended}
    stored = dict(ledger.execute("SELECT original_filename, extract(epoch FROM min(created_at)) FROM imap_intake.attachment "
                                 "WHERE original_filename = ANY(%s) GROUP BY 1", (list(names),)).fetchall())
    latency: dict[bool, list[float]] = {True: [], False: []}
    spared: list[float] = []  # push orders of workspaces none of whose polls the SIGKILL interrupted
    each: list[tuple[str, float]] = []
    for name, number in names.items():
        if name in stored:
            at, push_kind = appended[number]
            seconds = float(stored[name]) - at
            latency[push_kind].append(seconds)
            if push_kind:
                each.append((orders[number][0], round(seconds, 1)))
                if orders[number][0] not in interrupted:
                    spared.append(seconds)
    return {
        "phases": phases,
        "idle_run_cpu_s": {"scheduler_triggerer_workers": per_run,
                           "by_component": {k: round(v / idle["runs"], 3) for k, v in idle["cpu_seconds"].items()} if idle["runs"] else {}},
        "push_workspace_hour_cpu_s": {
            "holding_idle_sessions": holding, "holding_with_dag_processor": holding_with_parse,
            "with_safety_net_every": {f"{h}h": round(holding + per_run / h, 3) for h in (1, 6, 24)} if holding and per_run else {},
        },
        "delivery_to_stored_s": {"push": _spread(latency[True]), "cron": _spread(latency[False]),
                                 "push_without_killed_workspaces": _spread(spared),
                                 "push_each": sorted(each, key=lambda item: -item[1])},
        "imap_sessions_per_mailbox_max": max(probe.imap_peak.values(), default=0),
    }


BEGIN, END = "<!-- make scale-1000: begin -->", "<!-- make scale-1000: end -->"


def _row(phase: dict[str, Any]) -> str:
    cpu = phase["cpu_seconds"]
    loop = phase["scheduler_loop_ms"]
    return (f"{phase['minutes']} | {phase['runs']} | {phase['cores_busy']} | {cpu['scheduler']} / {cpu['triggerer']} / {cpu['workers']} / "
            f"{cpu['dag-processor']} / {cpu['api-server']} / {cpu['postgres']} / {cpu['dovecot']} | {loop['p50']} / {loop['p95']} / "
            f"{loop['max']} | {phase['triggerer_rss_mb_max']} MB, {phase['triggerer_threads_max']} | "
            f"{phase['imap_sessions_p50']} / {phase['imap_sessions_max']} | {phase['postgres_connections_max']['ledger']} / "
            f"{phase['postgres_connections_max']['airflow']}")


def render(report: dict[str, Any], path: Path) -> None:
    """Replace the ``make scale-1000`` section of docs/scaling.md (between its markers) with this run's figures."""
    f, d, v = report["figures"], report["delivered"], report["verdict"]
    run, hour, lat = f["idle_run_cpu_s"], f["push_workspace_hour_cpu_s"], f["delivery_to_stored_s"]
    section = [
        BEGIN,
        f"Measured by `{report['command']}` ({report['date']}, {report['cores']} cores, one machine): {report['workspaces']} workspaces "
        f"over {report['mailboxes']} Dovecot mailboxes ({report['catchalls']} catch-alls), {report['push_workspaces']} of them push "
        f"(safety net `{report['push_cron']}`, {report['push_mailboxes']} IDLE sessions) and the rest cron only (`{report['cron']}`); "
        f"CeleryExecutor, {report['workers']} workers × {report['concurrency']} slots; DAG file parsed every {report['parse_interval']} s; "
        + (f"{report['pool_count']} pools (a pool per shared mailbox, one for the workspaces alone on theirs). " if report.get("pools") == "shared"
           else f"{report.get('pool_count', report['mailboxes'])} pools (one per mailbox). ")
        + f"{d['messages']} messages with {d['orders']} orders delivered over {d['minutes']:g} min; a worker SIGKILLed mid-task.",
        "",
        "| phase | min | runs | cores busy | CPU s: scheduler / triggerer / workers / dag-processor / api-server / Postgres / Dovecot "
        "| scheduler loop ms p50 / p95 / max | triggerer RSS, threads (max) | IMAP sessions p50 / max "
        "| Postgres conns ledger / airflow |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {name} | {_row(phase)} |" for name, phase in f["phases"].items()],
        "",
        f"* CPU per idle run (scheduler + triggerer + workers, the idle phase): **{run['scheduler_triggerer_workers']} core-s** "
        f"({', '.join(f'{k} {val}' for k, val in run['by_component'].items())}).",
        f"* A push workspace, idle, per hour (the push-only phase: IDLE sessions held, scheduler and triggerer loops): "
        f"**{hour['holding_idle_sessions']} core-s** ({hour['holding_with_dag_processor']} with the dag-processor); with its "
        "safety-net cron: " + ", ".join(f"every {k}: {val}" for k, val in hour["with_safety_net_every"].items()) + " core-s.",
        f"* Delivery → attachment stored: push p50 {lat['push']['p50']} s, p95 {lat['push']['p95']} s, max {lat['push']['max']} s "
        f"({lat['push']['n']} orders"
        + (f"; without the workspaces whose poll the SIGKILL interrupted: p50 {lat['push_without_killed_workspaces']['p50']} s, "
           f"p95 {lat['push_without_killed_workspaces']['p95']} s" if "push_without_killed_workspaces" in lat else "")
        + f"); cron p50 {lat['cron']['p50']} s, p95 {lat['cron']['p95']} s ({lat['cron']['n']} orders).",
        f"* IMAP sessions per mailbox, max: {f['imap_sessions_per_mailbox_max']}.",
        "",
        f"Verdict: `{v['line']}`",
        END,
    ]
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    block = "\n".join(section)
    path.write_text(pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n")

"""The verdict of ``make scale``, read from the ledger, Airflow's metadata, the mailboxes and the
process table: what was delivered was stored and imported once, the killed worker's tasks were
retried to completion, nothing is stuck, no flag changed, nothing is left running."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.servers import Servers
from devstack.dovecot import flags
from devstack.process import group_alive, pid_alive

#: A task queued or running this long, or a run active this long, counts as stuck.
STUCK_TASK_S, STUCK_RUN_S = 300, 600


@dataclass
class Verdict:
    attachments: int = 0
    attachments_once: int = 0
    orders: int = 0
    orders_once: int = 0
    interrupted: int = 0
    interrupted_retried: int = 0
    worker_ran_after_restart: int = 0
    stuck: list[str] = field(default_factory=list)
    failed_runs: int = 0
    flags_changed: int = 0
    problems: list[str] = field(default_factory=list)
    left_running: list[str] | None = None
    delivery_error: str | None = None

    @property
    def recovered(self) -> bool:
        return self.interrupted > 0 and self.interrupted_retried == self.interrupted and self.worker_ran_after_restart > 0

    @property
    def passed(self) -> bool:
        return (self.attachments > 0 and self.attachments_once == self.attachments and self.orders_once == self.orders
                and self.recovered and not self.stuck and not self.failed_runs and not self.flags_changed
                and self.left_running == [] and self.delivery_error is None)

    def line(self) -> str:
        worker = ("worker killed and recovered" if self.recovered else
                  f"worker killed, NOT recovered ({self.interrupted_retried} of {self.interrupted} interrupted tasks retried to "
                  f"completion, {self.worker_ran_after_restart} tasks on it after its restart)")
        parts = [f"attachments stored once {self.attachments_once} of {self.attachments}",
                 f"orders once {self.orders_once} of {self.orders}", worker,
                 "no run or task stuck" if not self.stuck else f"STUCK: {', '.join(self.stuck)}",
                 f"{self.failed_runs} failed runs", f"flags changed on {self.flags_changed} messages",
                 "nothing left running" if self.left_running == [] else f"LEFT RUNNING: {self.left_running}"]
        if self.delivery_error:
            parts.append(f"DELIVERY STOPPED EARLY: {self.delivery_error}")
        return f"scale: {'PASS' if self.passed else 'FAIL'}: " + ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line(), "passed": self.passed, "problems": self.problems[:20]}


def check(meta: psycopg.Connection[Any], ledger: psycopg.Connection[Any], found: Servers, mailboxes: list[str],
          orders: dict[str, tuple[str, str]], kill: dict[str, Any]) -> Verdict:
    v = Verdict(attachments=len(orders), orders=len(orders))
    _check_stored_once(v, ledger, orders, found)
    _check_worker_loss(v, meta, kill)
    stuck = meta.execute(
        "SELECT dag_id || '.' || task_id || ' (' || state || ')' FROM task_instance WHERE state IN ('queued', 'running', 'restarting') "
        "AND coalesce(start_date, queued_dttm) < now() - make_interval(secs => %s) UNION ALL "
        "SELECT dag_id || ' run ' || run_id FROM dag_run WHERE state IN ('queued', 'running') "
        "AND coalesce(start_date, queued_at) < now() - make_interval(secs => %s)", (STUCK_TASK_S, STUCK_RUN_S)).fetchall()
    v.stuck = [row[0] for row in stuck]
    failed = meta.execute("SELECT dag_id, run_id FROM dag_run WHERE state = 'failed'").fetchall()
    v.failed_runs = len(failed)
    v.problems += [f"failed run {d} {r}" for d, r in failed]
    for user in mailboxes:
        changed = {uid: f for uid, f in flags(found.dovecot, user).items() if set(f) - {b"\\Recent"}}
        v.flags_changed += len(changed)
        v.problems += [f"{user} UID {uid} has flags {f!r}" for uid, f in changed.items()]
    return v


def _check_stored_once(v: Verdict, ledger: psycopg.Connection[Any], orders: dict[str, tuple[str, str]], servers: Servers) -> None:
    """Each delivered attachment: one row in its own workspace and none elsewhere, its bytes where the
    row says (on disk, or read back from the S3 server); each order: one purchase order, in that workspace."""
    read = _reader(servers)
    names = {name: (number, slug) for number, (slug, name) in orders.items()}
    rows = ledger.execute("SELECT original_filename, workspace, storage_uri, sha256 FROM imap_intake.attachment "
                          "WHERE original_filename = ANY(%s)", (list(names),)).fetchall()
    by_name: dict[str, list[tuple[str, str, str]]] = {}
    for name, workspace, uri, sha in rows:
        by_name.setdefault(name, []).append((workspace, uri, sha))
    for name, (_number, slug) in names.items():
        found = by_name.get(name, [])
        if len(found) == 1 and found[0][0] == slug and read(found[0][1]) == found[0][2]:
            v.attachments_once += 1
        else:
            v.problems.append(f"attachment {name} of {slug}: {found}")
    counted = dict(ledger.execute("SELECT order_number || '@' || workspace, count(*) FROM imap_intake.purchase_order "
                                  "WHERE order_number = ANY(%s) GROUP BY 1", (list(orders),)).fetchall())
    for number, (slug, _name) in orders.items():
        if counted.get(f"{number}@{slug}") == 1 and sum(n for key, n in counted.items() if key.startswith(f"{number}@")) == 1:
            v.orders_once += 1
        else:
            v.problems.append(f"order {number} of {slug}: {[(k, n) for k, n in counted.items() if k.startswith(number)]}")


def _reader(servers: Servers) -> Callable[[str], str | None]:
    """``uri`` -> the SHA-256 of the bytes stored there, None when nothing is."""
    client = servers.s3.client() if servers.s3 else None

    def sha256(uri: str) -> str | None:
        if uri.startswith("s3://") and client is not None:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except client.exceptions.NoSuchKey:
                return None
        else:
            path = Path(uri.removeprefix("file://"))
            if not path.is_file():
                return None
            body = path.read_bytes()
        return hashlib.sha256(body).hexdigest()

    return sha256


def task_after_kill(meta: psycopg.Connection[Any], task: list[Any], killed_at: float) -> tuple[Any, ...] | None:
    """(state, try_number, ended before the kill) of one task the kill saw running: (dag_id, run_id, task_id, try, map_index)."""
    dag_id, run_id, task_id, _try_number, map_index = task
    return meta.execute("SELECT state, try_number, end_date <= to_timestamp(%s) FROM task_instance WHERE dag_id = %s "
                        "AND run_id = %s AND task_id = %s AND map_index = %s", (killed_at, dag_id, run_id, task_id, map_index)).fetchone()


def finished_before_kill(row: tuple[Any, ...] | None, try_number: int) -> bool:
    """It finished between the look at the running tasks and the SIGKILL: the kill interrupted nothing of it."""
    return bool(row and row[0] == "success" and row[1] == try_number and row[2])


def _check_worker_loss(v: Verdict, meta: psycopg.Connection[Any], kill: dict[str, Any]) -> None:
    v.interrupted = len(kill["interrupted"])
    for task in kill["interrupted"]:
        dag_id, run_id, task_id, try_number, _map_index = task
        row = task_after_kill(meta, task, kill["killed_at"])
        if finished_before_kill(row, try_number):
            v.interrupted -= 1
            continue
        # The retry ran to its end: success, or skipped (an import slot whose orders another slot took first).
        if row and row[0] in {"success", "skipped"} and row[1] > try_number:
            v.interrupted_retried += 1
        else:
            v.problems.append(f"interrupted {dag_id}.{task_id} ({run_id}) is now {row}")
    after = meta.execute("SELECT count(*) FROM task_instance WHERE hostname = %s AND start_date > to_timestamp(%s)",
                         (kill["worker"], kill["restarted_at"])).fetchone()
    v.worker_ran_after_restart = after[0] if after else 0


def server_pids(found: Servers) -> list[int]:
    """The pids of the run's Redis, S3, Dovecot and Postgres, read before teardown removes their files."""
    pids = [found.redis.pid() if found.redis else None, found.dovecot.pid(),
            found.s3.process.pid if found.s3 and found.s3.process else None]
    try:
        pids.append(int((found.postgres.data_dir / "postmaster.pid").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    return [pid for pid in pids if pid]


def left_running(root: Path, groups: list[int], pids: list[int], *, wait: float = 30) -> list[str]:
    """After teardown: what is still alive of the run (Airflow process groups, its servers, any process
    whose command line names its scratch folder), given ``wait`` seconds to finish exiting."""
    deadline = time.monotonic() + wait
    while True:
        alive = [f"process group {g}" for g in groups if group_alive(g)]
        alive += [f"pid {pid}" for pid in pids if pid_alive(pid)]
        marker = str(root).encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if marker in cmdline:
                    command = cmdline.replace(b"\0", b" ").decode(errors="replace")[:120]
                    alive.append(f"pid {entry.name}: {command}")
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)

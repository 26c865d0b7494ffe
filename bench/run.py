"""`make bench`: the project's own Postgres + Dovecot, mailboxes of 100, 1,000 and 10,000 messages, and
every figure of docs/benchmarks.md measured side by side in one run on this machine.

`python -m bench.run --smoke` runs the same code on tiny inputs (tests/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from devstack.dovecot import DovecotServer, append_messages
from devstack.faultproxy import FaultProxy
from devstack.postgres import PostgresServer
from devstack.samples import PO_CSV_EN, UBL_ORDER, message, po_pdf

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...] = (100, 1_000, 10_000)
    pdf_bytes: int = 30_000
    batch: int = 50
    big_messages: int = 20
    big_mb: int = 25
    workspaces: int = 1_000
    import_orders: int = 400
    peer: bool = True


SMOKE = Plan(sizes=(20,), pdf_bytes=2_000, big_messages=2, big_mb=1, workspaces=50, import_orders=20, peer=False)


class Stack:
    def __init__(self) -> None:
        self.postgres = PostgresServer.create()
        self.postgres.start()
        self.dovecot = DovecotServer.create()
        self.dovecot.start()
        self.storage = Path(tempfile.mkdtemp(prefix="imap-intake-bench-"))
        assert self.dovecot.tls_files is not None
        self.context = ssl.create_default_context(cafile=str(self.dovecot.tls_files.ca_cert))

    def settings(self, user: str, **overrides: Any):  # type: ignore[no-untyped-def]
        return self.dovecot.connection_settings(user, **{"conn_id": "bench", "timeout": 60.0, **overrides})

    def workspace(self, slug: str, **overrides: Any):  # type: ignore[no-untyped-def]
        from imap_intake.config import Workspace

        values: dict[str, Any] = {"slug": slug, "imap_conn_id": "bench", "start_date": dt.date(2020, 1, 1),
                                  "storage_base": f"file://{self.storage}/{slug}", "default_supplier": "Bench"}
        values.update(overrides)
        return Workspace(**values)

    def client(self, user: str) -> IMAPClient:
        client = IMAPClient("127.0.0.1", self.dovecot.tls_port, ssl=True, ssl_context=self.context, timeout=60)
        client.login(user, self.dovecot.password)
        return client

    def down(self) -> None:
        self.dovecot.destroy()
        self.postgres.destroy()
        subprocess.run(["rm", "-rf", str(self.storage)], check=False)


def po_messages(user: str, count: int, pdf_bytes: int, tag: str) -> list[tuple[bytes, None]]:
    pdf = po_pdf("BENCH", padding=pdf_bytes)
    return [(message(sender="buyer@bench.example", to=user, subject=f"{tag} {n}",
                     attachments=[(f"PO-{n}.pdf", "application/pdf", pdf + f"% {tag}-{n}\n".encode())]).as_bytes(), None)
            for n in range(count)]


def run_poll(stack: Stack, workspace, settings):  # type: ignore[no-untyped-def]
    from imap_intake.service.poll import poll
    from imap_intake.store import db
    from imap_intake.store.storage import AttachmentStore

    store = AttachmentStore(workspace.storage_base)
    with db.connect_dsn(stack.postgres.dsn) as connection:
        db.migrate(connection)
        started = time.perf_counter()
        result = poll(workspace, settings, connection=connection, now=NOW, store=store)
        return time.perf_counter() - started, result


def raw_fetch(stack: Stack, user: str, batch: int, *, lean: bool = False) -> tuple[float, int, int]:
    """The raw limit: UID FETCH BODY.PEEK[] in the same batch size, nothing else. ``lean``: with
    imaplib's debug formatting off (imapclient turns it on), the physical limit of this client."""
    started = time.perf_counter()
    client = stack.client(user)
    if lean:
        client._imap.debug = 0
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    count = size = 0
    for start in range(0, len(uids), batch):
        for _uid, item in client.fetch(uids[start : start + batch], ["BODY.PEEK[]"]).items():
            count += 1
            size += len(item[b"BODY[]"])
    client.logout()
    return time.perf_counter() - started, count, size


def seen_count(stack: Stack, user: str) -> int:
    client = stack.client(user)
    client.select_folder("INBOX", readonly=True)
    seen = len(client.search(["SEEN"]))
    client.logout()
    return seen


def peer_poll(stack: Stack, user: str) -> tuple[float, int]:
    from airflow.providers.imap.hooks.imap import ImapHook

    os.environ["AIRFLOW_CONN_BENCH_PEER"] = json.dumps({
        "conn_type": "imap", "host": "127.0.0.1", "port": stack.dovecot.tls_port, "login": user,
        "password": stack.dovecot.password, "extra": {"use_ssl": True}})
    os.environ["SSL_CERT_FILE"] = str(stack.dovecot.tls_files.ca_cert)  # type: ignore[union-attr]
    started = time.perf_counter()
    with ImapHook(imap_conn_id="bench_peer") as hook:
        found = hook.retrieve_mail_attachments(r".*\.pdf", check_regex=True, not_found_mode="ignore")
    return time.perf_counter() - started, len(found)


def mailbox_scale(stack: Stack, plan: Plan) -> list[dict[str, Any]]:
    rows = []
    for size in plan.sizes:
        ours, peer = f"ours{size}@bench.test", f"peer{size}@bench.test"
        mail = po_messages(ours, size, plan.pdf_bytes, f"m{size}")
        append_messages(stack.dovecot, ours, mail)
        if plan.peer:
            append_messages(stack.dovecot, peer, mail)
        megabytes = sum(len(raw) for raw, _ in mail) / 1e6
        workspace = stack.workspace(f"scale{size}", batch_size=plan.batch)
        settings = stack.settings(ours)
        raw_seconds, raw_count, _raw_bytes = raw_fetch(stack, ours, plan.batch)
        lean_seconds, lean_count, _lean_bytes = raw_fetch(stack, ours, plan.batch, lean=True)
        # The same first sync with the storage base on a RAM-backed filesystem: this VM creates files slowly.
        ram = Path(tempfile.mkdtemp(prefix="imap-intake-bench-", dir="/dev/shm")) if Path("/dev/shm").is_dir() else None
        ram_seconds = None
        if ram is not None:
            try:
                ram_seconds, ram_first = run_poll(stack, stack.workspace(f"ram{size}", batch_size=plan.batch,
                                                                      storage_base=f"file://{ram}"), settings)
                assert ram_first.attachments == size, ram_first
            finally:
                subprocess.run(["rm", "-rf", str(ram)], check=False)
        first_seconds, first = run_poll(stack, workspace, settings)
        assert first.attachments == size, first
        idle = [run_poll(stack, workspace, settings)[0] for _ in range(7)]
        proxy = FaultProxy(target_port=stack.dovecot.tls_port)
        try:
            run_poll(stack, workspace, stack.settings(ours, port=proxy.port))
            time.sleep(0.2)
            idle_bytes = proxy.bytes_up + proxy.bytes_down
        finally:
            proxy.close()
        row: dict[str, Any] = {
            "messages": size, "mailbox_mb": round(megabytes, 1),
            "idle_poll_ms_median": round(statistics.median(idle) * 1000, 1),
            "idle_poll_ms_max": round(max(idle) * 1000, 1),
            "idle_poll_imap_bytes": idle_bytes,
            "first_sync_s": round(first_seconds, 2),
            "first_sync_msgs_per_s": round(size / first_seconds, 1),
            "first_sync_mb_per_s": round(megabytes / first_seconds, 2),
            "raw_fetch_s": round(raw_seconds, 2),
            "raw_msgs_per_s": round(raw_count / raw_seconds, 1),
            "ratio_to_raw": round((size / first_seconds) / (raw_count / raw_seconds), 2),
            "lean_raw_msgs_per_s": round(lean_count / lean_seconds, 1),
            "ratio_to_lean_raw": round((size / first_seconds) / (lean_count / lean_seconds), 2),
        }
        if ram_seconds is not None:
            row.update({"ram_first_sync_msgs_per_s": round(size / ram_seconds, 1),
                        "ram_ratio_to_raw": round((size / ram_seconds) / (raw_count / raw_seconds), 2),
                        "ram_ratio_to_lean_raw": round((size / ram_seconds) / (lean_count / lean_seconds), 2)})
        if plan.peer:
            before = seen_count(stack, peer)
            peer_first, found = peer_poll(stack, peer)
            peer_repeat, found_again = peer_poll(stack, peer)
            row.update({
                "peer_first_sync_s": round(peer_first, 2), "peer_repeat_poll_s": round(peer_repeat, 2),
                "peer_attachments_first": found, "peer_attachments_repeat": found_again,
                "peer_seen_flags_changed": seen_count(stack, peer) - before,
            })
        ours_seen = seen_count(stack, ours)
        row["ours_seen_flags_changed"] = ours_seen
        rows.append(row)
        print(f"bench: {size} messages: {row}", flush=True)
    return rows


RSS_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from bench.run import Stack, run_poll
from imap_intake.service.poll import poll  # noqa: F401 - imports before the baseline
from imap_intake.store.storage import AttachmentStore  # noqa: F401
def high_water_kb():
    # VmHWM, not ru_maxrss: ru_maxrss survives execve and would report the parent's peak.
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
baseline = high_water_kb()
stack = Stack.__new__(Stack)
stack.__dict__.update(__import__("pickle").loads(bytes.fromhex({state!r})))
seconds, result = run_poll(stack, stack.workspace("rss", max_attachment_mb={limit}, max_message_mb={limit} * 2, batch_size=50), stack.settings({user!r}))
print(json.dumps({{"baseline_kb": baseline, "peak_kb": high_water_kb(),
                  "attachments": result.attachments, "seconds": seconds}}))
"""


def peak_rss(stack: Stack, plan: Plan) -> dict[str, Any]:
    import pickle

    user = "big@bench.test"
    payload = os.urandom(plan.big_mb * 1024 * 1024)
    for n in range(plan.big_messages):  # appended one at a time: only one big message in memory here
        raw = message(sender="buyer@bench.example", to=user, subject=f"big {n}",
                      attachments=[(f"big-{n}.pdf", "application/pdf", b"%PDF-1.4\n" + payload + str(n).encode())]).as_bytes()
        append_messages(stack.dovecot, user, [(raw, None)])
    state = pickle.dumps({"postgres": stack.postgres, "dovecot": stack.dovecot, "storage": stack.storage, "context": None}).hex()
    script = RSS_CHILD.format(root=str(ROOT), state=state, limit=plan.big_mb + 5, user=user)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    mailbox_mb = plan.big_messages * plan.big_mb * 4 / 3  # base64 on the wire
    return {"messages": plan.big_messages, "attachment_mb": plan.big_mb, "mailbox_mb_on_wire": round(mailbox_mb),
            "baseline_rss_mb": round(figures["baseline_kb"] / 1024), "peak_rss_mb": round(figures["peak_kb"] / 1024),
            "attachments": figures["attachments"], "seconds": round(figures["seconds"], 1)}


def dag_parse(plan: Plan) -> dict[str, Any]:
    from imap_intake.config import load_workspaces
    from imap_intake.workspace_dags import build_dags

    text = "workspaces:\n" + "".join(
        f"  - {{slug: w{i}, imap_conn_id: imap_{i % 20}, start_date: 2026-01-01, storage_base: 'file:///x'}}\n" for i in range(plan.workspaces))
    import gc

    build_dags(load_workspaces(text, source="bench", env={}))  # warm the imports
    times = []
    for _ in range(7):
        gc.collect()  # the previous round's 1,000 DAGs are garbage: collected here, not inside the next timing
        started = time.perf_counter()
        dags = build_dags(load_workspaces(text, source="bench", env={}))
        times.append(time.perf_counter() - started)
        assert len(dags) == plan.workspaces
        del dags
    return {"workspaces": plan.workspaces, "seconds_median": round(statistics.median(times), 3),
            "seconds_min": round(min(times), 3), "seconds_max": round(max(times), 3)}


def _import_worker(dsn: str, workspace, start, queue) -> None:  # type: ignore[no-untyped-def]
    from imap_intake.service.imports import import_pending
    from imap_intake.store import db
    from imap_intake.store.storage import AttachmentStore

    store = AttachmentStore(workspace.storage_base)
    with db.connect_dsn(dsn) as connection:
        start.wait()
        began = time.perf_counter()
        result = import_pending(workspace, connection=connection, read=store.get, now=NOW)
        queue.put((began, time.perf_counter(), result.imported))


def import_throughput(stack: Stack, plan: Plan) -> list[dict[str, Any]]:
    from imap_intake.store import db

    rows = []
    from devstack.samples import po_pdf, x12_order

    bodies: dict[str, tuple[str, str, Any]] = {
        "csv": ("po.csv", "text/csv", lambda n: PO_CSV_EN + f"\nPO-7731,2026-11-04,Z{n},x,1,1.00,1.00,USD\n".encode()),
        "ubl": ("po.xml", "application/xml", lambda n: UBL_ORDER + f"<!-- {n} -->".encode()),
        "pdf": ("po.pdf", "application/pdf", lambda n: po_pdf(f"45000{n:05d}")),  # a lines table read from positioned text
        "edi": ("po.edi", "application/edi-x12", lambda n: x12_order(f"45001{n:05d}")),
    }
    for fmt, (name, ctype, body) in bodies.items():
        user = f"import-{fmt}@bench.test"
        append_messages(stack.dovecot, user, [
            (message(sender="b@bench.example", to=user, subject=f"{fmt} {n}", attachments=[(name, ctype, body(n))]).as_bytes(), None)
            for n in range(plan.import_orders)])
        workspace = stack.workspace(f"import_{fmt}", accepted_types=frozenset({"pdf", "csv", "xlsx", "xml", "edi"}))
        run_poll(stack, workspace, stack.settings(user))
        for attempt, workers in enumerate((1, 1, 2)):  # attempt 0 warms caches and lazy imports: not reported
            with db.connect_dsn(stack.postgres.dsn) as connection:
                connection.execute("DELETE FROM imap_intake.purchase_order WHERE workspace=%s", (workspace.slug,))
                connection.execute("UPDATE imap_intake.attachment SET import_status='pending', attempts=0 WHERE workspace=%s", (workspace.slug,))
            ctx = multiprocessing.get_context("fork")
            start, queue = ctx.Event(), ctx.Queue()
            processes = [ctx.Process(target=_import_worker, args=(stack.postgres.dsn, workspace, start, queue)) for _ in range(workers)]
            for process in processes:
                process.start()
            time.sleep(1.0)
            start.set()
            results = [queue.get(timeout=600) for _ in processes]
            for process in processes:
                process.join()
            seconds = max(r[1] for r in results) - min(r[0] for r in results)
            imported = sum(r[2] for r in results)
            assert imported == plan.import_orders, (fmt, workers, imported)
            if attempt == 0:
                continue
            rows.append({"format": fmt, "import_tasks": workers, "orders": imported, "seconds": round(seconds, 2),
                         "orders_per_s": round(imported / seconds, 1)})
            print(f"bench: import {rows[-1]}", flush=True)
    return rows


def versions(stack: Stack) -> dict[str, str]:
    from importlib.metadata import version

    dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.split()[0]
    with __import__("psycopg").connect(stack.postgres.dsn) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    out = {"python": platform.python_version(), "apache-airflow": version("apache-airflow"), "imapclient": version("imapclient"),
           "dovecot": dovecot, "postgresql": postgres}
    try:
        out["apache-airflow-providers-imap"] = version("apache-airflow-providers-imap")
    except Exception:  # noqa: BLE001 - absent outside `make bench`
        pass
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, no peer, no files written")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="imap-intake-bench-airflow-"))
    plan = SMOKE if args.smoke else Plan()
    stack = Stack()
    started = time.perf_counter()
    try:
        results = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(), "machine": platform.machine(), "command": "make bench",
            "versions": versions(stack), "plan": plan.__dict__,
            "mailbox_scale": mailbox_scale(stack, plan),
            "peak_rss": peak_rss(stack, plan),
            "dag_parse": dag_parse(plan),
            "import_throughput": import_throughput(stack, plan),
        }
    finally:
        stack.down()
    results["total_seconds"] = round(time.perf_counter() - started)
    if not args.smoke:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        from bench.report import render

        render(results, ROOT / "docs" / "benchmarks.md")
        print(f"bench: wrote {Path(args.out).relative_to(ROOT)} and docs/benchmarks.md")
    return results


if __name__ == "__main__":
    main()

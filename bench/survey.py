"""``imap-intake diagnose`` on a 100,000-message mailbox against the same survey on a 1,000-message
one: its cost must follow the folders and the per-folder bound, not the mailbox's size.

A throwaway Dovecot; two users filled by MULTIAPPEND with small messages spread over a year (one in
five with a CSV order attached, the rest plain notes), plus four extra folders of 200 messages
each. The survey runs against each mailbox for a 30-day and a 365-day window, in one run.

    python -m bench.survey --messages 100000 --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.servers import servers
from devstack.dovecot import append_messages

RESULTS = Path(__file__).resolve().parent / "results" / "survey.json"
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
CSV = b"po_number,sku,quantity,unit_price\r\n4500012345,A-1,3,9.50\r\n"


def _raw(n: int, user: str) -> bytes:
    """A small message, built as bytes (100,000 of them through the email package would take minutes)."""
    head = (f"From: buyer{n % 50}@acme.example\r\nTo: {user}\r\nSubject: message {n}\r\n"
            f"Message-ID: <bench-{n}@acme.example>\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n")
    if n % 5:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\nA note, no order.\r\n").encode()
    import base64

    return (head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nOrder attached.\r\n'
            '--b\r\nContent-Type: text/csv; name="po.csv"\r\nContent-Disposition: attachment; filename="po.csv"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(CSV).decode() + "\r\n--b--\r\n").encode()


def _fill(dovecot: Any, user: str, count: int) -> float:
    started = time.monotonic()
    step = dt.timedelta(days=365) / count
    messages = [(_raw(n, user), NOW - step * (count - n)) for n in range(count)]
    append_messages(dovecot, user, messages, batch=1000)
    for folder in ("Archive", "Orders", "Nordwind", "Hafenkontor"):
        append_messages(dovecot, user, [(_raw(n, user), NOW - dt.timedelta(days=n % 60)) for n in range(200)], folder=folder, batch=200)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from imap_intake.service.survey import MAX_PER_FOLDER, survey_workspace  # noqa: PLC0415

    with servers("imap-intake-bench-survey-") as found:
        root, dovecot = found.root, found.dovecot
        users = {"small": "small@bench.test", "large": "large@bench.test"}
        fill = {}
        for size, user in users.items():
            dovecot.add_user(user)
            fill[size] = _fill(dovecot, user, args.small if size == "small" else args.messages)
            print(f"bench: filled {size} mailbox in {fill[size]:.1f} s", flush=True)
            os.environ[f"AIRFLOW_CONN_IMAP_{size.upper()}"] = found.imap_connection(user)
        (root / "workspaces.yaml").write_text("workspaces:\n" + "".join(
            f"  - {{slug: {size}, imap_conn_id: imap_{size}, start_date: 2026-01-01, storage_base: 'file://{root}', default_supplier: S}}\n"
            for size in users))
        rows = []
        for days in (30, 365):
            for size in ("small", "large"):
                survey_workspace(size, now=NOW, days=days, workspaces_file=root / "workspaces.yaml")  # warm Dovecot's indexes
                started = time.monotonic()
                result = survey_workspace(size, now=NOW, days=days, workspaces_file=root / "workspaces.yaml")
                seconds = time.monotonic() - started
                inbox = result.configured
                assert inbox is not None
                rows.append({"mailbox": size, "messages": inbox.total, "days": days, "in_window": inbox.recent,
                             "examined": sum(f.examined for f in result.folders), "folders": len(result.folders),
                             "orders_in_inbox": inbox.orders, "seconds": round(seconds, 3)})
                print("bench:", rows[-1], flush=True)
        by = {(r["mailbox"], r["days"]): r["seconds"] for r in rows}
        out = {"run_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), "command": f"python -m bench.survey --messages {args.messages}",
               "per_folder": MAX_PER_FOLDER, "rows": rows, "fill_seconds": {k: round(v, 1) for k, v in fill.items()},
               "ratio_large_to_small": {str(d): round(by[("large", d)] / by[("small", d)], 2) for d in (30, 365)}}
        print("bench: survey", json.dumps(out["ratio_large_to_small"]), flush=True)
        if args.write:
            RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

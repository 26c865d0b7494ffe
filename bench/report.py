"""Render docs/benchmarks.md from one run's JSON (bench/results/latest.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(title for _key, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "—")) for key, _title in columns) + " |")
    return lines


def render(results: dict[str, Any], path: Path) -> None:
    v = results["versions"]
    scale = results["mailbox_scale"]
    rss = results["peak_rss"]
    parse = results["dag_parse"]
    largest = scale[-1]
    lines = [
        "# Benchmarks",
        "",
        "Every figure on this page comes from one run of `make bench` on one machine; ratios are computed",
        "within that run. `make bench` starts the project's own Postgres and Dovecot (TLS on loopback), loads",
        "mailboxes by MULTIAPPEND, measures, and rewrites this page and `bench/results/latest.json`.",
        "",
        f"Run: {results['date']}, {results['cores']} cores ({results['machine']}), total {results['total_seconds']} s. "
        + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        "## Poll cost against mailbox size, and first sync against the raw IMAP limit",
        "",
        f"Each message carries one PDF of ~{results['plan']['pdf_bytes'] // 1000} KB. *Idle poll*: a poll that finds no new mail "
        "(connect, TLS, login, EXAMINE, cursor read; median and max of 7), and the IMAP bytes it exchanged "
        "(both directions, TLS included, counted by a proxy). *First sync*: the whole mailbox, stored and recorded. "
        f"*Raw*: a bare imapclient loop that UID FETCHes `BODY.PEEK[]` of the same messages in the same batch size "
        f"({results['plan']['batch']}) and does nothing else; *lean raw*: the same loop with imaplib's debug formatting "
        "off (imapclient turns it on), the physical limit of this client. *RAM*: the same first sync with the storage "
        "base on a RAM-backed filesystem (/dev/shm); the other first-sync figures store on this VM's disk, which creates "
        "files slowly. Every first sync makes its files durable (fsync of files and directories) before each commit. "
        "Extraction reads a message's MIME tree with the compiled parser fast-mail-parser wherever the result is the email "
        "package's reading (`mime/fast_tree.py` checks it per message; these messages all qualify), else with the email package. "
        "A sync of 500 messages or more also starts one helper process that reads (parses) groups of small messages "
        "while the poll records the previous group (`service/extractor.py`): the figures at 1,000 and 10,000 messages "
        "use a second core for that, the one at 100 does not. Peak RSS below is the poll's process; that poll (20 large "
        "messages) starts no helper.",
        "",
        *_table(scale, [("messages", "messages"), ("mailbox_mb", "MB"), ("idle_poll_ms_median", "idle poll ms (median)"),
                        ("idle_poll_ms_max", "idle poll ms (max)"), ("idle_poll_imap_bytes", "idle poll IMAP bytes"),
                        ("first_sync_msgs_per_s", "first sync msg/s"), ("first_sync_mb_per_s", "first sync MB/s"),
                        ("raw_msgs_per_s", "raw msg/s"), ("lean_raw_msgs_per_s", "lean raw msg/s"),
                        ("ratio_to_raw", "ratio to raw"), ("ratio_to_lean_raw", "ratio to lean raw"),
                        ("ours_seen_flags_changed", "\\Seen changed")]),
        "",
        *_table(scale, [("messages", "messages"), ("ram_first_sync_msgs_per_s", "first sync msg/s, RAM storage"),
                        ("ram_ratio_to_raw", "RAM: ratio to raw"), ("ram_ratio_to_lean_raw", "RAM: ratio to lean raw")]),
        "",
        f"Targets: idle poll flat in mailbox size and under 50 ms at {largest['messages']:,} messages "
        f"(measured: {largest['idle_poll_ms_median']} ms median); first sync at least 0.5 of raw at 10,000 messages "
        f"with RAM storage (measured: {largest.get('ram_ratio_to_raw', '-')}; on disk {largest['ratio_to_raw']}).",
        "",
        "## The peer: apache-airflow-providers-imap",
        "",
        "`ImapHook.retrieve_mail_attachments(r'.*\\.pdf', check_regex=True)` on an identical copy of each mailbox: "
        "a first sync, then a repeat poll with no new mail. It selects the folder read-write and fetches `RFC822`, "
        "so it marks every message `\\Seen`, and it has no cursor: a repeat poll downloads the whole mailbox again.",
        "",
        *_table(scale, [("messages", "messages"), ("first_sync_s", "imap-intake first sync s"), ("peer_first_sync_s", "peer first sync s"),
                        ("idle_poll_ms_median", "imap-intake repeat poll ms"), ("peer_repeat_poll_s", "peer repeat poll s"),
                        ("peer_attachments_repeat", "peer attachments returned again"), ("peer_seen_flags_changed", "peer \\Seen flags set")]),
        "",
        *([f"Target: a first sync at least 3x faster than the peer's at {largest['messages']:,} messages (measured: "
           f"{round(largest['peer_first_sync_s'] / largest['first_sync_s'], 2)}x on this VM's disk"
           + (f", {round(largest['peer_first_sync_s'] * largest['ram_first_sync_msgs_per_s'] / largest['messages'], 2)}x with RAM storage"
              if largest.get('ram_first_sync_msgs_per_s') else "") + "; the peer stores nothing).", ""]
          if largest.get("peer_first_sync_s") else []),
        "## Memory: a poll over large attachments",
        "",
        f"{rss['messages']} messages with a {rss['attachment_mb']} MB attachment each (~{rss['mailbox_mb_on_wire']} MB on the wire), "
        f"polled in a fresh process: peak RSS {rss['peak_rss_mb']} MB against {rss['baseline_rss_mb']} MB after imports "
        f"({rss['attachments']} attachments stored in {rss['seconds']} s). Bodies are fetched and committed in groups of at most 32 MB, so memory follows "
        "the group, not the mailbox: the peak is one group (or one message larger than 32 MB) plus the parsed message (the compiled "
        "parser's decoded parts; for a message left to the email package, its working copies). "
        f"Target: at most 3 x the largest message + 100 MB = {round(3 * rss['mailbox_mb_on_wire'] / rss['messages'] + 100)} MB.",
        "",
        "## DAG parsing",
        "",
        f"Building the DAGs of {parse['workspaces']:,} workspaces (YAML validation plus DAG objects, imports warm): "
        f"{parse['seconds_median']} s (median of 7, each after a garbage collection of the previous round's DAGs; "
        f"{parse.get('seconds_min', '-')}–{parse.get('seconds_max', '-')} s; target under 0.5 s). "
        "No network or database access happens while parsing.",
        "",
        "## Import throughput",
        "",
        "Orders parsed and written per second, with one and with two import processes claiming with `FOR UPDATE SKIP LOCKED`.",
        "",
        *_table(results["import_throughput"], [("format", "format"), ("import_tasks", "import tasks"), ("orders", "orders"),
                                               ("seconds", "seconds"), ("orders_per_s", "orders/s")]),
        "",
        *backfill_section(path.parent.parent / "bench" / "results" / "backfill.json"),
        *push_section(path.parent.parent / "bench" / "results" / "push.json"),
        *survey_section(path.parent.parent / "bench" / "results" / "survey.json"),
    ]
    path.write_text("\n".join(lines))


def backfill_section(source: Path) -> list[str]:
    """The month-long backfill, from its own run (`make bench-backfill`, ~25 minutes), when there is one."""
    if not source.exists():
        return []
    b = json.loads(source.read_text())
    return [
        "## A month of backfill through Airflow",
        "",
        f"`make bench-backfill` (run {b['run_at']}): a real Airflow (api-server, scheduler with LocalExecutor and "
        "dag-processor, metadata in Postgres), a Dovecot folder with "
        f"{b['messages']} messages spread over {b['days']} days, the demo workspace's `*/15` schedule, and the command a user "
        f"types for \"re-check March\": `{b['command']}`.",
        "",
        "| backfill runs | minutes | runs per minute | runs that opened an IMAP session | runs covered by an earlier scan "
        "(of them ended in the triggerer) | task processes on workers | attachments stored | max active runs |",
        "|---|---|---|---|---|---|---|---|",
        f"| {b['runs']:,} | {b['seconds'] / 60:.2f} ({b['seconds']:.0f} s) | {b['runs_per_minute']} | {b['imap_sessions']} | {b['covered_runs']:,} "
        f"({b.get('covered_in_triggerer', 0):,}) | {b.get('task_processes_on_workers', '—')} | {b['attachments_stored']} | {b['max_active_runs']} |",
        "",
        *([f"The cursor the switched-on DAG's first regular poll set before the backfill (UIDVALIDITY {b['cursor_before'][0]}, "
           f"UID {b['cursor_before'][1]}) was {'unchanged' if b['cursor_unchanged'] else 'MOVED'} after it; messages recorded: "
           f"{b['messages_recorded']} ({b['messages_recorded_distinct']} distinct UIDs).", ""]
          if b.get("cursor_before") else []),
        *[f"Another run: {o['seconds'] / 60:.2f} minutes ({o['runs_per_minute']} runs/min; {o['note']}). "
          for o in b.get("other_runs", [])],
        "",
        "Nearly every run finds its window inside the scan of an earlier run: its idle check ends it in the triggerer, "
        "without an IMAP session and without a task process on a worker. The runs that start before the first scan "
        "is complete (as many as may be active) go to workers and find their window covered there. What is left is "
        "Airflow's own work per run (start, defer to the triggerer, skip the import slots, end), a few seconds of "
        "latency each, so the month is bound by how many runs are active and how often the scheduler looks at each: "
        "one scheduler loop examines at most `[scheduler] max_dagruns_per_loop_to_schedule` running runs (Airflow's "
        "default 20). Scheduler settings of this run: "
        + ", ".join(f"`{k} = {v}`" for k, v in sorted(b.get("scheduler_settings", {}).items()))
        + (f"; runs active at once, median {b['running_runs_median']:g}, each {b['run_seconds_median']} s from start to end "
           "(median)." if b.get("run_seconds_median") else "."),
        "",
    ]


def push_section(source: Path) -> list[str]:
    """Delivery to stored with push, from its own run (`make bench-push`, ~5 minutes), when there is one."""
    if not source.exists():
        return []
    b = json.loads(source.read_text())
    return [
        "## Push: delivery to attachment stored",
        "",
        "`make bench-push`: a real Airflow with a triggerer (api-server, scheduler with LocalExecutor, dag-processor, "
        "triggerer; metadata in Postgres). One push workspace (cron far away: only mail starts its runs) receives "
        f"{b['deliveries']} orders one at a time; the clock runs from the APPEND to the attachment row in the ledger.",
        "",
        "| deliveries | p50 s | p95 s | max s | median: to asset event s | to run queued s | to poll task started s |",
        "|---|---|---|---|---|---|---|",
        f"| {b['deliveries']} | {b['p50_s']} | {b['p95_s']} | {b['max_s']} | {b['median_to_asset_event_s']} | "
        f"{b['median_to_run_queued_s']} | {b['median_to_poll_started_s']} |",
        "",
        *([b["note"], ""] if b.get("note") else []),
        "Where the time goes (medians from the timestamps Airflow records): the IDLE notification and the triggerer's "
        "asset event, then the scheduler queueing the run, then the LocalExecutor starting the poll task (a new task "
        "process), then the poll itself and its commit. With the cron schedule alone the wait is up to the schedule's "
        "period (15 minutes by default) plus the same run time.",
        "",
        f"IDLE sessions held for {b['workspaces_on_mailbox_b']} push workspaces on one mailbox: {b['idle_sessions_mailbox_b']} "
        f"(counted with `doveadm who`); for the single workspace's mailbox: {b['idle_sessions_mailbox_a']}.",
        "",
    ]


def survey_section(source: Path) -> list[str]:
    """``imap-intake diagnose`` on a large mailbox against a small one, from its own run (`make bench-survey`)."""
    if not source.exists():
        return []
    b = json.loads(source.read_text())
    return [
        "## Diagnose: the cost of surveying a mailbox",
        "",
        f"`{b['command']}` (run {b['run_at']}): `imap-intake diagnose`'s survey against a throwaway Dovecot, on a mailbox of "
        f"{b['rows'][1]['messages']:,} messages spread over a year and one of {b['rows'][0]['messages']:,}, each with four more "
        f"folders of 200 messages; at most {b['per_folder']} messages per folder are read (structure only). Times are the "
        "second of two surveys (Dovecot's indexes warm).",
        "",
        *_table(b["rows"], [("mailbox", "mailbox"), ("messages", "messages in INBOX"), ("days", "window (days)"),
                            ("in_window", "in the window"), ("examined", "examined, all folders"), ("seconds", "seconds")]),
        "",
        "Large mailbox / small mailbox, same window: " + ", ".join(f"{d} days {r}x" for d, r in b["ratio_large_to_small"].items())
        + " for 100 times the messages. Over 365 days both read the same 1,300 structures: what still grows is the "
        "server's `SEARCH SINCE` over its index and the list of UIDs it returns. Over 30 days the large mailbox also has "
        "more messages in the window, up to the 500 per folder read.",
        "",
    ]


if __name__ == "__main__":
    render(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))

"""``imap-intake``: the same service calls as the operators, for use without a scheduler."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from imap_intake.exceptions import ImapIntakeError


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


_STDOUT = sys.stdout


def emit(text: str) -> None:
    """Command output. Everything else (Airflow's logs included) goes to stderr, so stdout stays parseable."""
    _STDOUT.write(text + "\n")
    _STDOUT.flush()


def _print_json(value: Any) -> None:
    emit(json.dumps(value, default=_json_default, sort_keys=True))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cmd_check(args: argparse.Namespace) -> int:
    from imap_intake.hooks.imap import ImapIntakeHook

    ok, message = ImapIntakeHook(args.conn_id).diagnosis()
    emit(("OK: " if ok else "FAILED: ") + message)
    pool = pool_report(f"imap_intake__{args.conn_id}")
    if pool:
        emit(pool)
    return 0 if ok else 1


def pool_report(name: str) -> str | None:
    """Whether the default pool of a connection's workspaces exists in Airflow's metadata database:
    a poll task in a missing pool is never scheduled, and Airflow says nothing about it."""
    try:
        import warnings

        from airflow.models.pool import Pool

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = Pool.get_pool(name)
    except Exception:  # noqa: BLE001 - no metadata database here (a worker, a bare shell): nothing to say
        return None
    if found is None:
        return (f"WARNING: pool '{name}' does not exist: workspaces on this connection use it by default and their poll "
                f"task waits unscheduled until it does. Create it: airflow pools set {name} 4 'IMAP sessions'")
    return f"pool '{name}': {found.slots} slot(s) for IMAP sessions"


def cmd_poll(args: argparse.Namespace) -> int:
    from imap_intake.service.run import run_poll

    result = run_poll(args.workspace, now=_now(), since=args.since, until=args.until, workspaces_file=args.workspaces_file)
    _print_json(result.as_dict())
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from imap_intake.service.survey import survey_workspace
    from imap_intake.survey import render

    survey = survey_workspace(args.workspace, now=_now(), days=args.days, per_folder=args.per_folder,
                              workspaces_file=args.workspaces_file)
    if args.json:
        _print_json(survey_dict(survey))
    else:
        for line in render(survey):
            emit(line)
    return 0


def survey_dict(survey: Any) -> dict[str, Any]:
    from imap_intake.survey import conclusions

    return {
        "workspace": survey.workspace, "account": survey.account, "folder": survey.folder, "days": survey.days,
        "folders": [{"name": f.name, "special": f.special, "messages": f.total, "in_window": f.recent, "examined": f.examined,
                     "orders": f.orders, "verdicts": dict(f.verdicts), "refused_types": dict(f.kinds_refused), "error": f.error}
                    for f in survey.folders],
        "suggested_folder": survey.suggestion.name if survey.suggestion else None,
        "conclusions": conclusions(survey), "notes": list(survey.notes),
    }


def cmd_reread(args: argparse.Namespace) -> int:
    from imap_intake.service.reread import DEFAULT_OUTCOMES
    from imap_intake.service.run import run_reread

    outcomes = tuple(args.outcome or DEFAULT_OUTCOMES)
    result = run_reread(args.workspace, now=_now(), uids=args.uid or None, outcomes=outcomes, workspaces_file=args.workspaces_file)
    _print_json(result.as_dict())
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from imap_intake.service.run import run_import

    _print_json(run_import(args.workspace, now=_now(), workspaces_file=args.workspaces_file).as_dict())
    return 0


def _ledger(args: argparse.Namespace) -> Any:
    from imap_intake.store import db
    from imap_intake.workspaces import get_workspace

    conn_id = args.postgres_conn_id
    if not conn_id and getattr(args, "workspace", None):
        conn_id = get_workspace(args.workspace, args.workspaces_file).postgres_conn_id
    return db.connect(conn_id or "imap_intake_db")


def cmd_status(args: argparse.Namespace) -> int:
    from imap_intake.store import report

    with _ledger(args) as connection:
        rows = report.status(connection, args.workspace)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        emit("no polls recorded yet" + (f" for workspace '{args.workspace}'" if args.workspace else ""))
    for row in rows:
        emit(f"workspace {row['workspace']}")
        for cursor in row["cursors"]:
            emit(f"  cursor   {cursor['folder']} on {cursor['account']}: UIDVALIDITY {cursor['uidvalidity']}, last UID {cursor['last_uid']}")
        last = row["last_poll"]
        if last:
            emit(f"  last poll {last['started_at']:%Y-%m-%d %H:%M:%S} {last['mode']}: {last['status']}, "
                  f"{last['fetched']} fetched, {last['imported']} attachment(s) stored" + (f" - {last['error']}" if last["error"] else ""))
        emit("  messages " + (", ".join(f"{k} {v}" for k, v in row["outcomes"].items()) or "none"))
        emit("  imports  " + (", ".join(f"{k} {v}" for k, v in row["imports"].items()) or "none"))
        for item in row["failed"]:
            emit(f"  failed   UID {item['uid']} (UIDVALIDITY {item['uidvalidity']}) {item['subject']!r} from {item['sender'] or '-'}: {item['reason']}")
        if row["failed"]:
            emit(f"           after a fix: imap-intake reread {row['workspace']}")
        for item in row["quarantined"]:
            emit(f"  quarantined attachment {item['id']} {item['original_filename']!r} after {item['attempts']} attempts: {item['last_error']}")
    return 0


def cmd_attachments(args: argparse.Namespace) -> int:
    from imap_intake.store import report

    with _ledger(args) as connection:
        for row in report.attachments(connection, args.workspace):
            if args.json:
                _print_json(row)
            else:
                emit(f"{row['uid']:>6} {row['import_status']:<11} {row['supplier'] or '-':<16} {row['filename']} ({row['size']} bytes)")
    return 0


def cmd_encrypt(args: argparse.Namespace) -> int:
    from imap_intake.crypto import KeyRing

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ImapIntakeError("no password on standard input: pipe it in, e.g. 'imap-intake encrypt-password --conn-id ID < file'")
    emit(KeyRing.from_env().encrypt(password, conn_id=args.conn_id, mailbox=args.mailbox))
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from imap_intake.crypto import KeyRing

    envelope = sys.stdin.readline().strip()
    emit(KeyRing.from_env().rotate(envelope, conn_id=args.conn_id or "", mailbox=args.mailbox))
    return 0


def cmd_generate_key(args: argparse.Namespace) -> int:
    from imap_intake.crypto import generate_key

    emit(f"{args.key_id}:{generate_key()}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from imap_intake.store import db

    with db.connect_dsn(db.dsn_for_connection(args.postgres_conn_id)) as connection:
        applied = db.migrate(connection)
    emit("applied: " + (", ".join(applied) or "nothing (up to date)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imap-intake", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def workspace_args(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
        p.add_argument("workspace", nargs="?" if optional else None)
        p.add_argument("--workspaces-file", help="default: $IMAP_INTAKE_WORKSPACES_FILE or $AIRFLOW_HOME/include/workspaces.yaml")

    p = sub.add_parser("check", help="test an imapintake connection (an IMAP mailbox) and explain what is wrong")
    p.add_argument("conn_id")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("poll", help="poll a workspace's mailbox now (same code as the DAG task)")
    workspace_args(p)
    p.add_argument("--since", help="backfill window start (ISO date)")
    p.add_argument("--until", help="backfill window end: a date is the last day re-checked (inclusive), a date-time is "
                   "exclusive (default: now)")
    p.set_defaults(func=cmd_poll)
    p = sub.add_parser(
        "diagnose", help="why a workspace imports nothing: its mailbox's folders surveyed read-only against its rules",
        description="Lists every folder with its recent messages, how many carry an order the workspace would import, "
        "and which rule (start_date, accepted_types, recipients, size limits, supplier rules) excludes the rest. "
        "Reads message structure only (BODYSTRUCTURE): no body is downloaded, no flag changed, nothing recorded.",
    )
    workspace_args(p)
    p.add_argument("--days", type=int, default=30, help="survey mail of the last N days (default 30)")
    p.add_argument("--per-folder", type=int, default=500, help="examine at most the N most recent messages per folder (default 500)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diagnose)
    p = sub.add_parser(
        "reread", help="read messages again after a fix or a new supplier rule (default: failed and not_routed ones)",
        description="Re-evaluates messages of the folder's current UIDVALIDITY with today's code and rules. "
        "Never re-reads imported messages or duplicates; never stores an attachment twice.",
    )
    workspace_args(p)
    p.add_argument("--uid", type=int, action="append", help="a message's UID (repeatable); default: by outcome")
    p.add_argument("--outcome", action="append", choices=("failed", "not_routed", "too_large", "no_supported_attachment", "unparseable"),
                   help="re-read messages with this outcome (repeatable; default: failed, not_routed)")
    p.set_defaults(func=cmd_reread)
    p = sub.add_parser("import", help="import pending attachments of a workspace as orders")
    workspace_args(p)
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("status", help="cursor, last poll, counts by outcome, quarantined imports")
    workspace_args(p, optional=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--postgres-conn-id")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("attachments", help="stored attachments (one JSON object per line with --json)")
    workspace_args(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--postgres-conn-id")
    p.set_defaults(func=cmd_attachments)
    p = sub.add_parser("encrypt-password", help="read a password or OAuth2 secret on stdin, print an AES-256-GCM envelope")
    bound = p.add_mutually_exclusive_group(required=True)
    bound.add_argument("--mailbox", help="bind the envelope to this mailbox: the connection's login@host "
                       "(e.g. orders@acme.example@imap.gmail.com); opens under the UI's Test connection too")
    bound.add_argument("--conn-id", help="bind it to a connection id instead (earlier versions' envelopes)")
    p.set_defaults(func=cmd_encrypt)
    p = sub.add_parser("rotate-password", help="read an envelope on stdin, print it re-encrypted under the active key")
    p.add_argument("--mailbox", help="login@host: the new envelope is bound to this mailbox")
    p.add_argument("--conn-id", help="the connection id an earlier envelope was bound to")
    p.set_defaults(func=cmd_rotate)
    p = sub.add_parser("generate-key", help="print a new key entry for IMAP_INTAKE_KEYS")
    p.add_argument("--key-id", default=dt.date.today().strftime("k%Y%m%d"))
    p.set_defaults(func=cmd_generate_key)
    p = sub.add_parser("migrate", help="apply the ledger's SQL migrations")
    p.add_argument("--postgres-conn-id", default="imap_intake_db")
    p.set_defaults(func=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    global _STDOUT
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _STDOUT, sys.stdout = sys.stdout, sys.stderr
    try:
        if not args.verbose:
            logging.getLogger("imap_intake").setLevel(logging.WARNING)
        return int(args.func(args))
    except ImapIntakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = _STDOUT


if __name__ == "__main__":
    sys.exit(main())

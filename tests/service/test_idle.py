"""The idle check the triggerer runs before a poll: idle only when it is sure, never raising, against a
real Dovecot and Postgres."""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap

import pytest

from devstack.samples import PO_CSV_EN, message
from imap_intake.service.check_reuse import CheckReuse
from imap_intake.service.idle import check_idle
from imap_intake.service.run import run_import, run_poll
from imap_intake.store import db as store_db

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture()
def workspace(dovecot, postgres, mail_user, monkeypatch, tmp_path, unique):  # type: ignore[no-untyped-def]
    slug = unique("idle")
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_IDLE", json.dumps({
        "conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port, "login": mail_user,
        "password": dovecot.password, "extra": {"ca_cert": dovecot.tls_files.ca_pem}}))
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_INTAKE_DB", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port, "login": postgres.user,
        "password": postgres.password, "schema": postgres.database}))
    (tmp_path / "workspaces.yaml").write_text(textwrap.dedent(f"""
        workspaces:
          - {{slug: {slug}, imap_conn_id: imap_idle, start_date: 2026-01-01, storage_base: 'file://{tmp_path}/store', default_supplier: S}}
    """))
    return slug, tmp_path / "workspaces.yaml"


def order(user: str, n: int) -> tuple[bytes, None]:
    return message(sender="b@acme.example", to=user, subject=f"PO {n}",
                   attachments=[(f"po{n}.csv", "text/csv", PO_CSV_EN + str(n).encode())]).as_bytes(), None


def test_idle_only_when_nothing_arrived_and_nothing_awaits_import(workspace, mail_user, append, db) -> None:  # type: ignore[no-untyped-def]
    slug, file = workspace
    check = lambda **kw: check_idle(slug, now=dt.datetime.now(dt.UTC), backfill=False, run_id="r", workspaces_file=file, **kw)  # noqa: E731
    first = check()  # before any poll
    assert not first.idle and "no cursor yet" in first.reason
    append(mail_user, [order(mail_user, 1)])
    run_poll(slug, now=NOW, workspaces_file=file)
    pending = check()
    assert not pending.idle and "1 attachment(s) await import" in pending.reason
    run_import(slug, now=dt.datetime.now(dt.UTC), workspaces_file=file)
    quiet = check()
    assert quiet.idle and "no new mail" in quiet.reason
    row = db.execute("SELECT run_id, reason FROM imap_intake.idle_check WHERE workspace=%s", (slug,)).fetchone()
    assert row == ("r", quiet.reason)
    append(mail_user, [order(mail_user, 2)])
    arrived = check()
    assert not arrived.idle and "new mail: UIDNEXT 3, cursor at UID 1" in arrived.reason
    assert not check(since="2026-03-01").idle  # a window from the trigger form: the poll reads it


def test_a_check_that_cannot_sign_in_hands_the_poll_to_a_worker(workspace, mail_user, append, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    slug, file = workspace
    append(mail_user, [order(mail_user, 1)])
    run_poll(slug, now=NOW, workspaces_file=file)
    run_import(slug, now=dt.datetime.now(dt.UTC), workspaces_file=file)
    connection = json.loads(os.environ["AIRFLOW_CONN_IMAP_IDLE"])
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_IDLE", json.dumps({**connection, "password": "Wrong-Password-Idle-1"}))
    verdict = check_idle(slug, now=dt.datetime.now(dt.UTC), backfill=False, workspaces_file=file)
    assert not verdict.idle and "could not decide" in verdict.reason and "Wrong-Password-Idle-1" not in verdict.reason


def test_the_triggerer_keeps_its_ledger_connection_and_checks_afresh_when_postgres_dropped_it(workspace, mail_user, append, db) -> None:  # type: ignore[no-untyped-def]
    slug, file = workspace
    append(mail_user, [order(mail_user, 1)])
    run_poll(slug, now=NOW, workspaces_file=file)
    run_import(slug, now=dt.datetime.now(dt.UTC), workspaces_file=file)
    reuse = CheckReuse()
    dsn = store_db.dsn_for_connection("imap_intake_db")
    check = lambda: check_idle(slug, now=dt.datetime.now(dt.UTC), backfill=False, workspaces_file=file, reuse=reuse)  # noqa: E731
    assert check().idle
    [kept] = reuse.kept_backends(dsn)
    assert check().idle
    assert reuse.kept_backends(dsn) == [kept]  # the same session served the second check
    db.execute("SELECT pg_terminate_backend(%s)", (kept,))  # what a Postgres restart does to it
    after = check()
    assert after.idle, after.reason  # decided on a fresh connection, not handed to a worker by a stale one
    assert reuse.kept_backends(dsn) not in ([], [kept])


def test_connection_lookups_are_kept_for_a_while() -> None:
    clock = [0.0]
    reuse = CheckReuse(clock=lambda: clock[0], lookup_seconds=30)
    loads: list[int] = []
    load = lambda: loads.append(1) or len(loads)  # noqa: E731
    assert reuse.lookup("imap", "imap_a", load) == 1
    clock[0] = 29.0
    assert reuse.lookup("imap", "imap_a", load) == 1  # within the time: not asked again
    assert reuse.lookup("imap", "imap_b", load) == 2  # another connection is its own entry
    clock[0] = 31.0
    assert reuse.lookup("imap", "imap_a", load) == 3  # an edit in the UI is seen after at most lookup_seconds

"""The idle check the triggerer runs before a poll: idle only when it is sure, never raising, against a
real Dovecot and Postgres."""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap

import pytest

from devstack.samples import PO_CSV_EN, message
from imap_intake.service.idle import check_idle
from imap_intake.service.run import run_import, run_poll

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

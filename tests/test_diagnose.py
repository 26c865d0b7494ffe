"""`imap-intake diagnose`: against a real Dovecot, it names the folder that holds the orders and the
rule that excludes the rest, with counts, without changing a flag."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from devstack.dovecot import flags
from devstack.samples import PO_CSV_EN, message, po_pdf
from imap_intake.service.survey import survey_workspace
from imap_intake.survey import conclusions, render

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture()
def mailbox(dovecot, mail_user, append, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """Four orders in 'Orders', three notes without attachments in INBOX, all from the last week."""
    orders = [(message(sender="Buyer <buyer@acme.example>", to="orders@shop.example", subject=f"PO {i}",
                       attachments=[("po.pdf", "application/pdf", po_pdf(str(i))), ("lines.csv", "text/csv", PO_CSV_EN)])
               .as_bytes(), NOW - dt.timedelta(days=i + 1)) for i in range(4)]
    notes = [(message(sender="colleague@shop.example", to="orders@shop.example", subject=f"lunch {i}").as_bytes(),
              NOW - dt.timedelta(days=2)) for i in range(3)]
    append(mail_user, orders, folder="Orders")
    append(mail_user, notes)
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_SURVEY", json.dumps({
        "conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port, "login": mail_user,
        "password": dovecot.password, "extra": {"ca_cert": dovecot.tls_files.ca_pem}}))
    today = NOW.date()
    workspaces = tmp_path / "workspaces.yaml"
    workspaces.write_text(textwrap.dedent(f"""
        workspaces:
          - {{slug: inbox_only, imap_conn_id: imap_survey, start_date: 2026-01-01, storage_base: 'file://{tmp_path}', default_supplier: S}}
          - {{slug: too_late, imap_conn_id: imap_survey, folder: Orders, start_date: {today + dt.timedelta(days=1)},
              storage_base: 'file://{tmp_path}', default_supplier: S}}
          - {{slug: xml_only, imap_conn_id: imap_survey, folder: Orders, start_date: 2026-01-01, accepted_types: [xml],
              storage_base: 'file://{tmp_path}', default_supplier: S}}
          - {{slug: for_someone_else, imap_conn_id: imap_survey, folder: Orders, start_date: 2026-01-01,
              recipients: [sales@shop.example], storage_base: 'file://{tmp_path}', default_supplier: S}}
          - {{slug: no_supplier, imap_conn_id: imap_survey, folder: Orders, start_date: 2026-01-01, storage_base: 'file://{tmp_path}'}}
          - {{slug: right, imap_conn_id: imap_survey, folder: Orders, start_date: 2026-01-01, storage_base: 'file://{tmp_path}',
              default_supplier: S}}
    """))
    return workspaces


def survey(slug: str, workspaces) -> object:  # type: ignore[no-untyped-def]
    return survey_workspace(slug, now=NOW, workspaces_file=workspaces)


def test_orders_in_another_folder_are_found_and_named(mailbox, dovecot, mail_user) -> None:  # type: ignore[no-untyped-def]
    before = {folder: flags(dovecot, mail_user, folder) for folder in ("INBOX", "Orders")}
    result = survey("inbox_only", mailbox)
    assert result.configured.verdicts == {"no_attachment": 3}  # type: ignore[attr-defined]
    assert result.suggestion.name == "Orders" and result.suggestion.orders == 4  # type: ignore[attr-defined]
    said = "\n".join(render(result))  # type: ignore[arg-type]
    assert "orders are in folder 'Orders' (4 of its recent messages), not 'INBOX': set folder: Orders" in said
    assert "3 have no attachment" in said
    assert {folder: flags(dovecot, mail_user, folder) for folder in ("INBOX", "Orders")} == before  # read-only: no flag, not even \Seen


@pytest.mark.parametrize(("slug", "verdict", "words"), [
    ("too_late", "before_start_date", "arrived before start_date: a poll reads mail from start_date on"),
    ("xml_only", "type_not_accepted", "have attachments of types the workspace does not accept (types: pdf x4, csv x4)"),
    ("for_someone_else", "not_addressed", "are not addressed to the workspace's recipients"),
    ("no_supplier", "no_supplier", "match no supplier rule, and there is no default supplier"),
])
def test_each_excluding_rule_is_named_with_its_count(mailbox, slug: str, verdict: str, words: str) -> None:  # type: ignore[no-untyped-def]
    result = survey(slug, mailbox)
    assert result.configured.verdicts == {verdict: 4}  # type: ignore[attr-defined]
    said = "\n".join(render(result))  # type: ignore[arg-type]
    assert f"4 {words}" in said
    assert any("nothing would be imported" in line for line in conclusions(result))  # type: ignore[arg-type]


def test_a_workspace_that_works_says_so(mailbox) -> None:  # type: ignore[no-untyped-def]
    result = survey("right", mailbox)
    assert result.configured.verdicts == {"would_import": 4} and result.suggestion is None  # type: ignore[attr-defined]
    assert conclusions(result) == []  # type: ignore[arg-type]


def test_the_command_prints_the_survey_and_json(mailbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import ROOT

    cli = str(Path(sys.executable).parent / "imap-intake")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    text = subprocess.run([cli, "diagnose", "inbox_only", "--workspaces-file", str(mailbox)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "set folder: Orders" in text.stdout and text.stderr == ""
    as_json = subprocess.run([cli, "diagnose", "inbox_only", "--json", "--workspaces-file", str(mailbox)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert json.loads(as_json.stdout)["suggested_folder"] == "Orders"


def test_the_survey_sees_every_order_the_poll_would_store_in_real_mail(dovecot, mail_user, append) -> None:  # type: ignore[no-untyped-def]
    """Other parsers' test suites through Dovecot's BODYSTRUCTURE: every message whose extraction yields an
    accepted attachment is one the survey counts as an order (or a maybe), never as excluded."""
    from imap_intake.imap.mailbox import Mailbox
    from imap_intake.mime.extract import Limits, extract
    from imap_intake.survey import judge, outline_parts
    from tests.conftest import make_settings, make_workspace
    from tests.mime.test_real_mail import SUITES

    workspace = make_workspace("real")
    append(mail_user, [(path.read_bytes(), NOW) for path in SUITES])
    stored: dict[int, bool] = {}
    said: dict[int, str] = {}
    with Mailbox.open(make_settings(dovecot, mail_user)) as mailbox:
        mailbox.examine("INBOX")
        uids = mailbox.uids_above(0)
        assert len(uids) == len(SUITES)
        for uid, item in mailbox.outlines(uids).items():
            from imap_intake.survey import MessageOutline

            said[uid] = judge(workspace, MessageOutline(uid, NOW, 1, outline_parts(item[b"BODYSTRUCTURE"]), "a@b.example"))[0]
        for fetched in mailbox.bodies(uids):
            stored[fetched.uid] = bool(extract(fetched.raw, Limits(accepted=workspace.accepted_types)).attachments)
    missed = [uid for uid, has in stored.items() if has and said[uid] not in {"would_import", "maybe"}]
    assert sum(stored.values()) >= 5 and missed == []

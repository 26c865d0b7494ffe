"""Security checks: the password is masked, never stored, never printed; SQL is parameterised only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devstack.samples import demo_mailbox
from tests.conftest import ROOT, make_settings, make_workspace
from tests.reliability.report import record
from tests.service.helpers import run

pytestmark = pytest.mark.integration


def test_hook_registers_the_decrypted_password_with_the_masker(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact

    from imap_intake.crypto import KeyRing, generate_key
    from imap_intake.hooks.imap import ImapIntakeHook

    keys = f"k1:{generate_key()}"
    secret = "Masked-Mailbox-Password-77"
    envelope = KeyRing.from_env({"IMAP_INTAKE_KEYS": keys}).encrypt(secret, conn_id="imap_masked")
    monkeypatch.setenv("IMAP_INTAKE_KEYS", keys)
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_MASKED", json.dumps({"conn_type": "imapintake", "host": "imap.example.com",
                                                                "login": "u@example.com", "password": envelope}))
    settings = ImapIntakeHook("imap_masked").get_settings()
    assert settings.password == secret
    assert secret not in str(redact(f"login failed for {secret}"))
    assert secret not in repr(settings)


def test_only_secrets_are_registered_with_the_masker(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Folder, encryption, supplier and CA stay readable in task logs; the client secret does not."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact

    from imap_intake.hooks.imap import ImapIntakeHook

    extra = {"encryption": "tls", "provider": "gmail", "folder": "Purchase Orders", "default_supplier": "Nordwind Logistik",
             "auth": "oauth2_refresh_token", "token_url": "https://login.example.test/token", "client_id": "intake-client-1",
             "client_secret": "Client-Secret-Kept-Out-19"}
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_EXTRAS", json.dumps({"conn_type": "imapintake", "host": "imap.example.com", "port": 993,
                                                               "login": "u@example.com", "password": "Refresh-Token-Kept-Out-23",
                                                               "extra": extra}))
    settings = ImapIntakeHook("imap_extras").get_settings()
    assert settings.folder == "Purchase Orders"
    # (Airflow itself hides values whose key names a secret, "token_url" included: not ours to change.)
    line = "polling Purchase Orders over tls for Nordwind Logistik as intake-client-1, refresh token grant"
    assert redact(line) == line
    assert "Client-Secret-Kept-Out-19" not in str(redact("secret Client-Secret-Kept-Out-19"))
    assert "Refresh-Token-Kept-Out-23" not in str(redact("token Refresh-Token-Kept-Out-23"))


def test_password_is_nowhere_in_postgres(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, demo_mailbox(mail_user))
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    run(workspace, make_settings(dovecot, mail_user, password=dovecot.password), db)
    tables = [r[0] for r in db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='imap_intake'")]
    rows = 0
    for table in tables:
        for (text,) in db.execute(
            "SELECT row_to_json(t)::text FROM (SELECT * FROM imap_intake." + {t: t for t in tables}[table] + ") t"  # noqa: S608 - names from the catalogue
        ):
            rows += 1
            assert dovecot.password not in text
    stored = b"".join(p.read_bytes() for p in Path(tmp_path).rglob("*") if p.is_file())
    assert dovecot.password.encode() not in stored
    record("password searched in Postgres and storage", tables=len(tables), rows_searched=rows, found=0)


def test_sql_is_parameterised_only() -> None:
    offenders = []
    for path in (ROOT / "plugins" / "imap_intake").rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"\.execute(?:many)?\(\s*(f\"|f'|\"[^\"]*\"\s*%|\"[^\"]*\"\.format)", text):
            offenders.append(f"{path.name}:{text[:match.start()].count(chr(10)) + 1}")
    assert offenders == []
    record("SQL built from strings", files_scanned=len(list((ROOT / "plugins" / "imap_intake").rglob("*.py"))), found=0)


def test_the_published_figures_match_this_suite() -> None:
    from tests.reliability.test_faults import KILL_TRIALS, PER_TRIAL
    from tests.reliability.test_hostile_mail import FUZZ_EXAMPLES

    text = (ROOT / "docs" / "reliability.md").read_text()
    figures = json.loads(text[text.index("```json") + 7 : text.rindex("```")])
    assert figures["SIGKILL at random points"]["trials"] == KILL_TRIALS
    assert figures["SIGKILL at random points"]["attachments_stored_once"] == KILL_TRIALS * PER_TRIAL
    assert figures["property-based fuzzing (hypothesis)"]["random_bytes_inputs"] == FUZZ_EXAMPLES
    assert all(v.get("found", 0) == 0 for k, v in figures.items() if "found" in v)

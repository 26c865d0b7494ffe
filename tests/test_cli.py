"""The imap-intake command against real servers; secrets never reach its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.samples import demo_mailbox
from imap_intake.crypto import generate_key
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).parent / "imap-intake")


@pytest.fixture()
def cli_env(dovecot, postgres, mail_user, tmp_path):  # type: ignore[no-untyped-def]
    keys = f"k1:{generate_key()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), IMAP_INTAKE_KEYS=keys)
    env["AIRFLOW_CONN_IMAP_INTAKE_DB"] = json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port, "login": postgres.user,
        "password": postgres.password, "schema": postgres.database})
    workspaces = tmp_path / "workspaces.yaml"
    slug = "cli_" + mail_user.split("@")[0]
    workspaces.write_text(f"workspaces:\n  - {{slug: {slug}, imap_conn_id: imap_cli, start_date: 2026-01-01, "
                          f"storage_base: 'file://{tmp_path}/store', default_supplier: Someone}}\n")
    env["IMAP_INTAKE_WORKSPACES_FILE"] = str(workspaces)
    env["SLUG"] = slug
    return env


def imap_conn(dovecot, user: str, password: str, **extra: object) -> str:  # type: ignore[no-untyped-def]
    return json.dumps({"conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port, "login": user,
                       "password": password, "extra": {"ca_cert": dovecot.tls_files.ca_pem, **extra}})


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_encrypted_password_round_trip_through_check_poll_status_and_attachments(cli_env, dovecot, mail_user, append, db) -> None:  # type: ignore[no-untyped-def]
    secret = dovecot.password
    encrypted = run(["encrypt-password", "--conn-id", "imap_cli"], cli_env, stdin=secret + "\n")
    assert encrypted.returncode == 0 and encrypted.stdout.startswith("aesgcm:v1:k1:")
    env = dict(cli_env, AIRFLOW_CONN_IMAP_CLI=imap_conn(dovecot, mail_user, encrypted.stdout.strip()))
    append(mail_user, demo_mailbox(mail_user))
    outputs = []
    check = run(["check", "imap_cli"], env)
    outputs.append(check)
    assert check.returncode == 0 and check.stdout.startswith("OK: Connected") and "8 messages" in check.stdout
    poll = run(["-v", "poll", env["SLUG"]], env)
    outputs.append(poll)
    assert poll.returncode == 0 and json.loads(poll.stdout)["attachments"] == 6
    assert "batch 1/1" in poll.stderr  # progress is logged
    status = run(["status", env["SLUG"], "--json"], env)
    outputs.append(status)
    (row,) = json.loads(status.stdout)
    assert row["outcomes"] == {"imported": 6, "no_supported_attachment": 2}
    human = run(["status", env["SLUG"]], env)
    outputs.append(human)
    assert "messages imported 6, no_supported_attachment 2" in human.stdout
    listing = run(["attachments", env["SLUG"], "--json"], env)
    outputs.append(listing)
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert len(rows) == 6
    for field in ("workspace", "folder", "uidvalidity", "uid", "message_id", "internal_date", "sender", "original_filename",
                  "filename", "sha256", "size", "content_type", "supplier", "storage_uri", "import_status"):
        assert all(field in r for r in rows), field
    imported = run(["import", env["SLUG"]], env)
    outputs.append(imported)
    assert json.loads(imported.stdout)["imported"] == 6
    for result in outputs:
        assert secret not in result.stdout and secret not in result.stderr


def test_check_explains_a_wrong_password_without_printing_it(cli_env, dovecot, mail_user) -> None:  # type: ignore[no-untyped-def]
    wrong = "Wrong-Password-Do-Not-Print-42"
    env = dict(cli_env, AIRFLOW_CONN_IMAP_CLI=imap_conn(dovecot, mail_user, wrong, provider="office365", auth="password"))
    result = run(["check", "imap_cli"], env)
    assert result.returncode == 1
    assert "FAILED: " in result.stdout and "rejected the login" in result.stdout
    assert "no longer accepts passwords" in result.stdout and "microsoft_app" in result.stdout  # the way that works
    generic = run(["check", "imap_cli"], dict(cli_env, AIRFLOW_CONN_IMAP_CLI=imap_conn(dovecot, mail_user, wrong)))
    assert "two-factor sign-in usually need an app password" in generic.stdout
    assert wrong not in result.stdout + result.stderr + generic.stdout + generic.stderr


def test_wrong_key_names_the_key_id(cli_env, dovecot, mail_user) -> None:  # type: ignore[no-untyped-def]
    encrypted = run(["encrypt-password", "--conn-id", "imap_cli"], cli_env, stdin="some-password-123\n").stdout.strip()
    env = dict(cli_env, IMAP_INTAKE_KEYS=f"k1:{generate_key()}", AIRFLOW_CONN_IMAP_CLI=imap_conn(dovecot, mail_user, encrypted))
    result = run(["check", "imap_cli"], env)
    assert result.returncode == 1 and "does not open with key 'k1'" in result.stdout
    assert "some-password-123" not in result.stdout + result.stderr


def test_rotation_and_key_generation(cli_env) -> None:  # type: ignore[no-untyped-def]
    envelope = run(["encrypt-password", "--conn-id", "c"], cli_env, stdin="pw-rotate-1\n").stdout.strip()
    new_key = run(["generate-key", "--key-id", "k2"], cli_env).stdout.strip()
    env = dict(cli_env, IMAP_INTAKE_KEYS=cli_env["IMAP_INTAKE_KEYS"] + "," + new_key, IMAP_INTAKE_ACTIVE_KEY="k2")
    rotated = run(["rotate-password", "--conn-id", "c"], env, stdin=envelope + "\n")
    assert rotated.returncode == 0 and rotated.stdout.startswith("aesgcm:v1:k2:")


def test_unknown_workspace_and_missing_connection_are_actionable(cli_env) -> None:  # type: ignore[no-untyped-def]
    result = run(["poll", "nope"], cli_env)
    assert result.returncode == 1 and "no workspace 'nope'; workspaces defined:" in result.stderr
    result = run(["check", "imap_missing"], cli_env)
    assert result.returncode == 1 and "connection 'imap_missing' is not defined" in result.stdout


def test_provider_is_listed_by_airflow() -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run([airflow, "providers", "list", "-o", "json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "imap-intake" in {p["package_name"] for p in json.loads(result.stdout[result.stdout.index("["):])}


def test_check_sees_a_connection_made_in_admin_connections(cli_env, airflow_db, dovecot, mail_user) -> None:  # type: ignore[no-untyped-def]
    """Admin > Connections writes to Airflow's metadata database; the command reads it there too."""
    airflow = str(Path(sys.executable).parent / "airflow")
    conn_id = "ui_made_" + mail_user.split("@")[0]
    made = subprocess.run([airflow, "connections", "add", conn_id, "--conn-json", imap_conn(dovecot, mail_user, dovecot.password)],
                          env=cli_env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    assert f"AIRFLOW_CONN_{conn_id.upper()}" not in cli_env
    result = run(["check", conn_id], cli_env)
    assert result.returncode == 0 and result.stdout.startswith("OK: Connected"), result.stdout + result.stderr[-2000:]
    assert f"pool 'imap_intake__{conn_id}' does not exist" in result.stdout and f"airflow pools set imap_intake__{conn_id}" in result.stdout
    subprocess.run([airflow, "pools", "set", f"imap_intake__{conn_id}", "3", "IMAP"], env=cli_env, capture_output=True, timeout=120, check=True)
    assert f"pool 'imap_intake__{conn_id}': 3 slot(s)" in run(["check", conn_id], cli_env).stdout
    assert dovecot.password not in result.stdout + result.stderr


def test_status_lists_failed_messages_and_reread_imports_them_after_the_fix(cli_env, dovecot, mail_user, append, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from devstack.samples import PO_CSV_EN, message

    env = dict(cli_env, AIRFLOW_CONN_IMAP_CLI=imap_conn(dovecot, mail_user, dovecot.password))
    good = [PO_CSV_EN + f"good{n}".encode() for n in range(2)]
    blocked = next(PO_CSV_EN + f"x{n}".encode() for n in range(1000)
                   if hashlib.sha256(PO_CSV_EN + f"x{n}".encode()).hexdigest()[:2] not in {hashlib.sha256(g).hexdigest()[:2] for g in good})
    prefix = hashlib.sha256(blocked).hexdigest()[:2]
    mails = [message(sender="b@acme.example", to=mail_user, subject=f"PO {i}", attachments=[(f"po{i}.csv", "text/csv", data)]).as_bytes()
             for i, data in enumerate([good[0], blocked, good[1]])]
    append(mail_user, [(raw, None) for raw in mails])
    # The store refuses exactly one object: its directory name is taken by a file (a broken mount, a bad permission).
    (tmp_path / "store" / "sha256").mkdir(parents=True)
    (tmp_path / "store" / "sha256" / prefix).write_text("not a directory")
    poll = run(["poll", env["SLUG"]], env)
    assert poll.returncode == 0, poll.stderr[-2000:]
    assert json.loads(poll.stdout)["outcomes"] == {"imported": 2, "failed": 1}
    status = run(["status", env["SLUG"]], env)
    assert "failed   UID 2" in status.stdout and "StorageError" in status.stdout and f"imap-intake reread {env['SLUG']}" in status.stdout
    (tmp_path / "store" / "sha256" / prefix).unlink()
    again = run(["reread", env["SLUG"]], env)
    assert again.returncode == 0, again.stderr[-2000:]
    changes = json.loads(again.stdout)["changes"]
    assert [(c["uid"], c["was"], c["now"], c["attachments"]) for c in changes] == [(2, "failed", "imported", 1)]
    listing = run(["attachments", env["SLUG"], "--json"], env)
    assert len(listing.stdout.splitlines()) == 3
    assert json.loads(run(["reread", env["SLUG"]], env).stdout)["reread"] == 0

"""OAuth2 secrets (client secrets, refresh tokens, service-account keys, access tokens) are nowhere:
not in CLI output or its verbose logs, not in ledger rows, not in stored files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.samples import demo_mailbox
from tests.imap.test_oauth import google, microsoft, refresh_token
from tests.reliability.report import record
from tests.test_cli import cli_env, run  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.integration


def _connection(settings) -> str:  # type: ignore[no-untyped-def]
    oauth = settings.oauth
    extra = {"auth": oauth.kind, "ca_cert": settings.ca_cert, "client_id": oauth.client_id, "tenant_id": oauth.tenant_id,
             "token_url": oauth.token_url, "client_secret": oauth.client_secret, "scope": oauth.scope,
             "authority_host": oauth.authority_host, "timeout": 10}
    return json.dumps({"conn_type": "imapintake", "host": settings.host, "port": settings.port, "login": settings.username,
                       "password": oauth.secret, "extra": {k: v for k, v in extra.items() if v}})


def test_oauth_secrets_and_tokens_are_nowhere(cli_env, dovecot, oauth_server, mail_user, append, db, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    append(mail_user, demo_mailbox(mail_user))
    kinds = {
        "microsoft_app": microsoft(dovecot, oauth_server, mail_user),
        "google_service_account": google(dovecot, oauth_server, mail_user),
        "oauth2_refresh_token": refresh_token(dovecot, oauth_server, mail_user)[0],
    }
    secrets: list[str] = []
    outputs: list[str] = []
    for settings in kinds.values():
        assert settings.oauth is not None
        key = json.loads(settings.oauth.secret) if settings.oauth.kind == "google_service_account" else None
        secrets += [settings.oauth.secret] if key is None else [key["private_key"].split("\n")[1]]
        secrets += [settings.oauth.client_secret] if settings.oauth.client_secret else []
        env = dict(cli_env, AIRFLOW_CONN_IMAP_CLI=_connection(settings))
        for args in (["-v", "check", "imap_cli"], ["-v", "poll", env["SLUG"]], ["-v", "status", env["SLUG"]]):
            done = run(args, env)
            assert done.returncode == 0, done.stderr[-2000:]
            outputs.append(done.stdout + done.stderr)
    tokens = oauth_server.issued_tokens()
    assert len(tokens) >= 6 and all(len(s) >= 16 for s in secrets)
    text = "\n".join(outputs)
    rows = "\n".join(r[0] for table in ("message", "attachment", "poll", "skipped_part", "cursor")
                     for r in db.execute(f"SELECT row_to_json(t)::text FROM imap_intake.{table} t"))  # noqa: S608 - fixed names
    stored = b"".join(p.read_bytes() for p in Path(tmp_path).rglob("*") if p.is_file() and p.suffix != ".yaml")
    found = [s for s in secrets + tokens if s in text or s in rows or s.encode() in stored]
    assert found == []
    record("OAuth2 secrets and tokens searched in CLI output, verbose logs, ledger rows and storage",
           kinds=len(kinds), secrets=len(secrets), access_tokens=len(tokens), cli_runs=len(outputs), found=len(found))

"""OAuth2 sign-in end to end: msal, google-auth and the refresh-token grant against a local token
server, tokens checked by Dovecot's oauth2 passdb (real Dovecot, real Postgres, real libraries)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from devstack.dovecot import DovecotServer
from devstack.oauth_server import OAuthServer
from devstack.process import free_port
from devstack.samples import PO_CSV_EN, message, po_pdf
from imap_intake.exceptions import AuthenticationFailed, TokenEndpointUnreachable, TokenRefused
from imap_intake.imap.diagnose import diagnose
from imap_intake.imap.mailbox import Mailbox
from imap_intake.imap.settings import ConnectionSettings, settings_from_fields
from tests.conftest import make_workspace
from tests.service.helpers import attachment_rows, outcomes, run

pytestmark = pytest.mark.integration


def oauth_settings(dovecot: DovecotServer, user: str, password: str, **extra: Any) -> ConnectionSettings:
    assert dovecot.tls_files is not None
    return settings_from_fields(
        f"imap_{secrets.token_hex(3)}", host="127.0.0.1", port=dovecot.tls_port, login=user, password=password,
        extra={"ca_cert": dovecot.tls_files.ca_pem, "timeout": 10, **extra},
    )


def microsoft(dovecot: DovecotServer, oauth: OAuthServer, user: str, *, lifetime: int = 3600, mailbox: str | None = None,
              secret: str | None = None, **extra: Any) -> ConnectionSettings:
    tenant, client_id, real_secret = f"tenant-{secrets.token_hex(3)}", secrets.token_hex(8), secrets.token_urlsafe(24)
    oauth.add_microsoft_app(tenant=tenant, client_id=client_id, secret=real_secret, mailbox=mailbox or user, lifetime=lifetime)
    values = {"auth": "microsoft_app", "tenant_id": tenant, "client_id": client_id, "authority_host": oauth.base_url, **extra}
    return oauth_settings(dovecot, user, secret or real_secret, **values)


def google(dovecot: DovecotServer, oauth: OAuthServer, user: str, **options: Any) -> ConnectionSettings:
    key = oauth.add_service_account(domain=user.rpartition("@")[2], **options)
    return oauth_settings(dovecot, user, json.dumps(key), auth="google_service_account")


def refresh_token(dovecot: DovecotServer, oauth: OAuthServer, user: str, **options: Any) -> tuple[ConnectionSettings, str]:
    client_id, client_secret = secrets.token_hex(6), secrets.token_urlsafe(16)
    token = oauth.add_refresh_token(client_id=client_id, client_secret=client_secret, username=user, **options)
    settings = oauth_settings(dovecot, user, token, auth="oauth2_refresh_token", token_url=f"{oauth.base_url}/token",
                              client_id=client_id, client_secret=client_secret, scope="https://mail.google.com/")
    return settings, token


def _mail(user: str, n: int) -> bytes:
    return message(sender="buyer@acme.example", to=user, subject=f"PO {n}",
                   attachments=[(f"po-{n}.pdf", "application/pdf", po_pdf(str(n))), (f"po-{n}.csv", "text/csv", PO_CSV_EN + str(n).encode())]).as_bytes()


@pytest.mark.parametrize("kind", ["microsoft_app", "google_service_account", "oauth2_refresh_token"])
def test_check_and_a_full_poll_with_each_oauth_kind(kind, dovecot, oauth_server, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(_mail(mail_user, n), None) for n in range(3)])
    if kind == "microsoft_app":
        settings = microsoft(dovecot, oauth_server, mail_user)
    elif kind == "google_service_account":
        settings = google(dovecot, oauth_server, mail_user)
    else:
        settings = refresh_token(dovecot, oauth_server, mail_user)[0]
    check = diagnose(settings)
    assert check.ok, check.message
    assert "opened read-only: 3 messages" in check.message
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    result = run(workspace, settings, db)
    assert result.attachments == 6 and outcomes(db, workspace.slug) == {"imported": 3}


def test_a_token_that_expires_mid_sync_is_renewed_and_nothing_is_stored_twice(dovecot, oauth_server, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(_mail(mail_user, n), None) for n in range(9)])
    settings = microsoft(dovecot, oauth_server, mail_user, lifetime=2)  # every token outlives one fetch at most
    before = oauth_server.stats()["issued"]
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", batch_size=3)
    opened: list[Mailbox] = []
    original = Mailbox._opened

    def remember(cls, s):  # type: ignore[no-untyped-def]
        mailbox = original.__func__(cls, s)  # type: ignore[attr-defined]
        opened.append(mailbox)
        return mailbox

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(Mailbox, "_opened", classmethod(remember))
    try:
        result = run(workspace, settings, db)
    finally:
        monkeypatch.undo()
    assert result.attachments == 18 and len(attachment_rows(db, workspace.slug)) == 18
    assert opened[0].renewals >= 3  # sizes, then three groups of bodies: each fetch signed in with a fresh token
    assert oauth_server.stats()["issued"] - before >= 4
    assert run(workspace, settings, db).fetched == 0 and len(attachment_rows(db, workspace.slug)) == 18


def _refusal(settings: ConnectionSettings) -> str:
    result = diagnose(settings)
    assert not result.ok
    return result.message


def test_wrong_client_secret(dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    wrong = "Wrong-Secret-" + secrets.token_hex(6)
    message_text = _refusal(microsoft(dovecot, oauth_server, mail_user, secret=wrong))
    assert "AADSTS7000215" in message_text and "Certificates & secrets" in message_text and wrong not in message_text
    with pytest.raises(TokenRefused):
        Mailbox.open(microsoft(dovecot, oauth_server, mail_user, secret=wrong)).__enter__()


def test_unknown_tenant_and_unknown_client(dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    good = microsoft(dovecot, oauth_server, mail_user)
    assert good.oauth is not None
    tenant = _refusal(oauth_settings(dovecot, mail_user, "s", auth="microsoft_app", tenant_id="no-such-tenant",
                                     client_id=good.oauth.client_id, authority_host=oauth_server.base_url))
    assert "AADSTS90002" in tenant and "tenant was not found" in tenant
    client = _refusal(oauth_settings(dovecot, mail_user, "s", auth="microsoft_app", tenant_id=good.oauth.tenant_id,
                                     client_id="00000000-unknown", authority_host=oauth_server.base_url))
    assert "AADSTS700016" in client and "Application (client) ID" in client


def test_revoked_refresh_token(dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    settings, token = refresh_token(dovecot, oauth_server, mail_user)
    oauth_server.revoke_refresh_token(token)
    text = _refusal(settings)
    assert "revoked or has expired" in text and token not in text


def test_token_endpoint_down_is_transient(dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    down = f"https://127.0.0.1:{free_port()}"
    settings = oauth_settings(dovecot, mail_user, "s", auth="oauth2_refresh_token", token_url=f"{down}/token", client_id="c")
    text = _refusal(settings)
    assert "could not be reached" in text and "Will retry" in text
    with pytest.raises(TokenEndpointUnreachable) as info:
        Mailbox.open(settings).__enter__()
    assert info.value.retryable
    ms = oauth_settings(dovecot, mail_user, "s", auth="microsoft_app", tenant_id="t", client_id="c", authority_host=down)
    assert "could not be reached" in _refusal(ms)


def test_a_valid_token_for_another_mailbox_names_the_exchange_steps(dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    settings = microsoft(dovecot, oauth_server, mail_user, mailbox="someone-else@example.test")
    text = _refusal(settings)
    assert "refused it for" in text and "Add-MailboxPermission" in text and "Set-CASMailbox" in text
    with pytest.raises(AuthenticationFailed) as info:
        Mailbox.open(settings).__enter__()
    assert not info.value.retryable


def test_google_without_domain_wide_delegation(dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    text = _refusal(google(dovecot, oauth_server, mail_user, delegated=False))
    assert "Domain Wide Delegation" in text and "https://mail.google.com/" in text


def test_a_cached_token_the_server_no_longer_takes_is_refreshed_once(dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    settings = microsoft(dovecot, oauth_server, mail_user)
    assert diagnose(settings).ok
    before = oauth_server.stats()["issued"]
    assert diagnose(settings).ok and oauth_server.stats()["issued"] == before  # served from the process cache
    oauth_server.forget_tokens()  # the provider revoked it
    assert diagnose(settings).ok
    assert oauth_server.stats()["issued"] == before + 1

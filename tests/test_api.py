"""The Airflow API server's Test connection endpoint and connection form, for our connection type."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.fixture(scope="module")
def client(airflow_db):  # type: ignore[no-untyped-def]
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app())


def test_connection_test_endpoint_returns_the_diagnosis(client, dovecot, mail_user) -> None:  # type: ignore[no-untyped-def]
    body = {"connection_id": "probe", "conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port,
            "login": mail_user, "password": "Bad-Password-Not-Shown-9", "extra": json.dumps({"ca_cert": dovecot.tls_files.ca_pem, "provider": "gmail"})}
    response = client.post("/api/v2/connections/test", json=body)
    assert response.status_code == 200
    result = response.json()
    assert result["status"] is False and "rejected the login" in result["message"] and "app password" in result["message"]
    assert "Bad-Password-Not-Shown-9" not in response.text
    body["password"] = dovecot.password
    ok = client.post("/api/v2/connections/test", json=body).json()
    assert ok["status"] is True and "opened read-only" in ok["message"]


def test_form_fields_are_declared(client) -> None:  # type: ignore[no-untyped-def]
    hooks = client.get("/ui/connections/hook_meta").json()
    (ours,) = [h for h in hooks if h["connection_type"] == "imapintake"]
    (legacy,) = [h for h in hooks if h["connection_type"] == "imap_intake"]  # the earlier type name still has its form
    assert legacy["extra_fields"].keys() == ours["extra_fields"].keys()
    assert {"provider", "encryption", "validate_certificate", "ca_cert", "cert_fingerprint", "folder", "address",
            "default_supplier", "timeout"} <= set(ours["extra_fields"])
    # Blank means the preset's: no default that would be saved over it (Proton Bridge is STARTTLS, Microsoft 365 app sign-in).
    assert ours["extra_fields"]["encryption"]["value"] is None and ours["extra_fields"]["auth"]["value"] is None
    assert ours["extra_fields"]["provider"]["value"] == "generic"
    assert ours["standard_fields"]["password"]["title"].startswith("Password / app password / client secret")
    assert {"auth", "tenant_id", "client_id", "client_secret", "token_url", "scope"} <= set(ours["extra_fields"])


def test_test_connection_explains_oauth_refusals_without_echoing_secrets(client, dovecot, oauth_server, mail_user) -> None:  # type: ignore[no-untyped-def]
    oauth_server.add_microsoft_app(tenant="ui-tenant", client_id="ui-client", secret="Right-Secret-For-UI-1", mailbox=mail_user)
    extra = {"provider": "office365", "tenant_id": "ui-tenant", "client_id": "ui-client", "authority_host": oauth_server.base_url,
             "ca_cert": dovecot.tls_files.ca_pem}
    body = {"connection_id": "probe", "conn_type": "imap_intake", "host": "127.0.0.1", "port": dovecot.tls_port,
            "login": mail_user, "password": "Wrong-Secret-Not-Shown-3", "extra": json.dumps(extra)}
    refused = client.post("/api/v2/connections/test", json=body).json()
    assert refused["status"] is False and "AADSTS7000215" in refused["message"] and "Wrong-Secret-Not-Shown-3" not in json.dumps(refused)
    body["password"] = "Right-Secret-For-UI-1"
    ok = client.post("/api/v2/connections/test", json=body).json()
    assert ok["status"] is True and "opened read-only" in ok["message"] and "with a Microsoft Entra app token (OAUTHBEARER)" in ok["message"] and " a microsoft_app" not in ok["message"]


def test_an_envelope_opens_under_the_uis_test_and_no_temporary_id_is_named(client, dovecot, mail_user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from imap_intake.crypto import KeyRing, generate_key

    keys = f"k1:{generate_key()}"
    monkeypatch.setenv("IMAP_INTAKE_KEYS", keys)
    envelope = KeyRing.from_env({"IMAP_INTAKE_KEYS": keys}).encrypt(dovecot.password, mailbox=f"{mail_user}@127.0.0.1")
    body = {"connection_id": "orders_box", "conn_type": "imap_intake", "host": "127.0.0.1", "port": dovecot.tls_port,
            "login": mail_user, "password": envelope, "extra": json.dumps({"ca_cert": dovecot.tls_files.ca_pem})}
    ok = client.post("/api/v2/connections/test", json=body).json()
    assert ok["status"] is True, ok["message"]
    body["extra"] = json.dumps({"ca_cert": dovecot.tls_files.ca_pem, "folder": "NoSuchFolder"})
    failed = client.post("/api/v2/connections/test", json=body).json()
    assert failed["status"] is False and failed["message"].startswith("this connection (") and "NoSuchFolder" in failed["message"]
    other = KeyRing.from_env({"IMAP_INTAKE_KEYS": keys}).encrypt(dovecot.password, mailbox="someone@else.example")
    body["password"] = other
    refused = client.post("/api/v2/connections/test", json=body).json()
    assert refused["status"] is False and f"--mailbox {mail_user}@127.0.0.1" in refused["message"]
    assert dovecot.password not in json.dumps([ok, failed, refused])

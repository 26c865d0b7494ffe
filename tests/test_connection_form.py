"""What our connection form saves and tests (imap/form.py), and the api-server middleware that applies
it (ui/connection_form.py), driven as an ASGI app. The browser walk is in tests/test_status_page.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from imap_intake.imap.form import normalise_extra, normalise_request, unused_fields
from imap_intake.ui.connection_form import ConnectionFormMiddleware

# What Airflow 3.3's form posted for a Gmail connection whose user picked only the preset.
FORM_GMAIL = {"provider": "gmail", "auth": None, "tenant_id": None, "client_id": None, "client_secret": None, "token_url": None,
              "scope": None, "certificate_thumbprint": None, "authority_host": None, "encryption": None, "validate_certificate": True,
              "ca_cert": None, "cert_fingerprint": None, "folder": "INBOX", "address": None, "default_supplier": None, "timeout": 30}


def test_a_preset_left_to_itself_is_saved_with_its_sign_in_and_nothing_blank() -> None:
    assert normalise_extra(FORM_GMAIL) == {"provider": "gmail", "auth": "password", "validate_certificate": True, "folder": "INBOX",
                                           "timeout": 30}
    microsoft = normalise_extra({**FORM_GMAIL, "provider": "office365", "tenant_id": "t", "client_id": "c"})
    assert microsoft["auth"] == "microsoft_app" and microsoft["tenant_id"] == "t" and microsoft["client_id"] == "c"
    chosen = normalise_extra({**FORM_GMAIL, "provider": "office365", "auth": "oauth2_refresh_token", "token_url": "https://t", "tenant_id": "x"})
    assert chosen["auth"] == "oauth2_refresh_token" and "tenant_id" not in chosen  # the user's choice wins; other kinds' fields go


def test_fields_of_another_sign_in_kind_are_not_saved() -> None:
    saved = normalise_extra({"provider": "gmail", "auth": "password", "authority_host": "https://login.microsoftonline.com",
                             "tenant_id": "t", "scope": "s", "folder": "Orders"})
    assert saved == {"provider": "gmail", "auth": "password", "folder": "Orders"}
    assert unused_fields({"provider": "gmail", "tenant_id": "t", "client_secret": "x"}) == ["client_secret", "tenant_id"]
    assert unused_fields({"auth": "something-else", "tenant_id": "t"}) == []  # unknown kinds are left to the settings' own error


def test_requests_of_other_connection_types_are_left_alone() -> None:
    assert normalise_request({"conn_type": "postgres", "port": 0, "extra": json.dumps({"a": None})}, testing=True) is None
    ours = {"conn_type": "imapintake", "port": 0, "host": "", "extra": json.dumps(FORM_GMAIL)}
    tested = normalise_request(ours, testing=True)
    assert tested is not None and "port" not in tested and json.loads(tested["extra"])["auth"] == "password"
    saved = normalise_request({**ours, "port": 993}, testing=False)
    assert saved is not None and saved["port"] == 993
    assert normalise_request({"conn_type": "imapintake", "port": 993, "extra": "not json"}, testing=False) is None


def _through(method: str, path: str, body: bytes, chunks: int = 1) -> tuple[bytes, dict[bytes, bytes]]:
    """Send one request through the middleware; what the app behind it received."""
    seen: dict[str, object] = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen["body"], seen["headers"] = b"".join(parts), dict(scope["headers"])

    size = max(1, len(body) // chunks)
    pieces = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive():  # type: ignore[no-untyped-def]
        return messages.pop(0)

    scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-length", str(len(body)).encode())]}
    asyncio.run(ConnectionFormMiddleware(app)(scope, receive, None))
    return seen["body"], seen["headers"]  # type: ignore[return-value]


@pytest.mark.parametrize("chunks", [1, 3])
def test_the_middleware_rewrites_our_test_request_and_keeps_the_length_true(chunks: int) -> None:
    body = json.dumps({"conn_type": "imapintake", "connection_id": "g", "host": "", "port": 0, "password": "***",
                       "extra": json.dumps(FORM_GMAIL)}).encode()
    got, headers = _through("POST", "/api/v2/connections/test", body, chunks)
    request = json.loads(got)
    assert "port" not in request and request["password"] == "***" and headers[b"content-length"] == str(len(got)).encode()


@pytest.mark.parametrize(("method", "path", "changed"), [
    ("POST", "/api/v2/connections", True), ("PATCH", "/api/v2/connections/g", True), ("POST", "/api/v2/connections/test", True),
    ("GET", "/api/v2/connections/g", False), ("POST", "/api/v2/connections/enqueue-test/x", False), ("POST", "/api/v2/variables", False),
])
def test_the_middleware_touches_only_connection_writes(method: str, path: str, changed: bool) -> None:
    body = json.dumps({"conn_type": "imapintake", "connection_id": "g", "extra": json.dumps(FORM_GMAIL)}).encode()
    got, _ = _through(method, path, body)
    assert (got != body) is changed

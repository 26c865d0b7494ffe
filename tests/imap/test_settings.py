from __future__ import annotations

import pytest

from imap_intake.exceptions import ConfigError
from imap_intake.imap.settings import settings_from_fields


def build(**kw: object):  # type: ignore[no-untyped-def]
    base: dict[str, object] = {"host": None, "port": None, "login": "orders@acme.example", "password": "app-pw-1", "extra": {}}
    base.update(kw)
    return settings_from_fields("c", **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("provider", "host", "port", "encryption"),
    [("gmail", "imap.gmail.com", 993, "tls"), ("office365", "outlook.office365.com", 993, "tls"),
     ("proton_bridge", "127.0.0.1", 1143, "starttls")],
)
def test_presets_fill_host_port_and_mode(provider: str, host: str, port: int, encryption: str) -> None:
    s = build(extra={"provider": provider, "tenant_id": "t", "client_id": "c"})
    assert (s.host, s.port, s.encryption) == (host, port, encryption)


def test_generic_defaults_to_993_tls_and_validation_on() -> None:
    s = build(host="mail.acme.example")
    assert (s.port, s.encryption, s.validate_certificate, s.folder) == (993, "tls", True, "INBOX")


def test_plaintext_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="plaintext is allowed only to loopback"):
        build(host="mail.acme.example", port=143, extra={"encryption": "none"})
    assert build(host="mail.acme.example", port=143, extra={"encryption": "none", "allow_insecure_plaintext": "true"}).encryption == "none"
    assert build(host="127.0.0.1", port=143, extra={"encryption": "none"}).encryption == "none"


@pytest.mark.parametrize(("port", "encryption", "hint"), [(993, "starttls", "set encryption=tls"), (143, "tls", "set encryption=starttls")])
def test_port_mode_mismatch_hint(port: int, encryption: str, hint: str) -> None:
    assert hint in (build(host="m.example", port=port, extra={"encryption": encryption}).port_mode_hint() or "")


def test_prefixed_extras_from_the_ui_are_understood() -> None:
    s = build(host="m.example", extra={"extra__imap_intake__folder": "Orders", "extra__imap_intake__timeout": "12"})
    assert s.folder == "Orders" and s.timeout == 12


def test_fingerprint_is_normalised_and_validated() -> None:
    raw = "ab" * 32
    assert build(host="m.example", extra={"cert_fingerprint": raw}).cert_fingerprint == ":".join(["AB"] * 32)
    with pytest.raises(ConfigError, match="SHA-256 fingerprint"):
        build(host="m.example", extra={"cert_fingerprint": "abc"})


def test_password_never_in_repr_and_empty_password_says_app_password() -> None:
    assert "app-pw-1" not in repr(build(host="m.example"))
    with pytest.raises(ConfigError, match="app password"):
        build(password="", extra={"provider": "gmail"})


@pytest.mark.parametrize("extra", [{"encryption": "ssl"}, {"provider": "yahoo"}, {"timeout": "soon"}, {"validate_certificate": "maybe"}])
def test_bad_extras_are_named(extra: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="connection 'c'"):
        build(host="m.example", extra=extra)


def test_office365_defaults_to_an_entra_app_and_says_passwords_no_longer_work() -> None:
    s = build(extra={"provider": "office365", "tenant_id": "contoso.onmicrosoft.com", "client_id": "11111111-2222"})
    assert s.auth == "microsoft_app" and s.oauth is not None
    assert s.oauth.scope == "https://outlook.office365.com/.default" and s.oauth.tenant_id == "contoso.onmicrosoft.com"
    with pytest.raises(ConfigError, match="tenant_id is empty; copy the Directory \\(tenant\\) ID"):
        build(extra={"provider": "office365"})
    with pytest.raises(ConfigError, match="no longer accepts passwords"):
        build(password="", extra={"provider": "office365", "tenant_id": "t", "client_id": "c"})


def test_a_service_account_key_is_checked_and_never_echoed() -> None:
    with pytest.raises(ConfigError, match="whole JSON key") as info:
        build(host="imap.gmail.com", password="not json s3cr3t", extra={"auth": "google_service_account"})
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(ConfigError, match="not a service account key"):
        build(host="imap.gmail.com", password='{"type": "authorized_user"}', extra={"auth": "google_service_account"})


def test_a_refresh_token_grant_needs_its_endpoint_and_client() -> None:
    with pytest.raises(ConfigError, match="token_url is empty"):
        build(host="imap.example", password="rt", extra={"auth": "oauth2_refresh_token", "client_id": "c"})
    s = build(host="imap.example", password="REFRESH-TOKEN-7",
              extra={"auth": "oauth2_refresh_token", "client_id": "c", "token_url": "https://idp/token", "client_secret": "CLIENT-SECRET-9"})
    assert s.oauth is not None and s.oauth.client_secret == "CLIENT-SECRET-9"
    assert "CLIENT-SECRET-9" not in repr(s) and "REFRESH-TOKEN-7" not in repr(s)


def test_unknown_auth_kind_is_named() -> None:
    with pytest.raises(ConfigError, match="auth 'kerberos' is unknown"):
        build(host="imap.example", extra={"auth": "kerberos"})


def test_a_pem_whose_line_breaks_became_spaces_is_rebuilt(dovecot) -> None:  # type: ignore[no-untyped-def]
    import ssl

    pem = dovecot.tls_files.ca_pem
    flattened = " ".join(pem.split("\n"))
    s = build(host="imap.example", extra={"ca_cert": flattened})
    assert s.ca_cert == pem if pem.endswith("\n") else s.ca_cert.strip() == pem.strip()
    ssl.create_default_context(cadata=s.ca_cert)  # OpenSSL takes it
    assert build(host="imap.example", extra={"ca_cert": pem.replace("\n", "\\n")}).ca_cert == s.ca_cert


@pytest.mark.parametrize("bad", ["just some text", "-----BEGIN CERTIFICATE----- not*base64 -----END CERTIFICATE-----",
                                 "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_a_broken_pem_names_the_field_and_the_fix(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"CA certificate \(PEM\) field \(ca_cert\)"):
        build(host="imap.example", extra={"ca_cert": bad})

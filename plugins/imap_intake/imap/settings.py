"""Connection settings: the fields of an ``imap_intake`` Airflow connection, validated.

Pure: takes the connection's fields as plain values, returns a frozen dataclass or raises
``ConfigError`` with a message that names the connection, the field and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imap_intake.exceptions import ConfigError
from imap_intake.imap.presets import (
    PRESETS,
    WELL_KNOWN_PLAIN_PORTS,
    WELL_KNOWN_TLS_PORTS,
    Preset,
    preset,
)

ENCRYPTIONS = ("tls", "starttls", "none")
AUTH_KINDS = ("password", "microsoft_app", "google_service_account", "oauth2_refresh_token")
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
_FINGERPRINT = re.compile(r"^(?:sha256[:/])?([0-9a-fA-F]{2}(?::?[0-9a-fA-F]{2}){31})$")


def is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bool(value: Any, *, conn_id: str, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise ConfigError(f"connection '{conn_id}': extra '{name}' must be true or false, not {value!r}")


def normalise_fingerprint(value: str, *, conn_id: str) -> str:
    match = _FINGERPRINT.match(value.strip())
    if not match:
        raise ConfigError(
            f"connection '{conn_id}': cert_fingerprint must be a SHA-256 fingerprint "
            "(64 hex digits, colons optional), e.g. the output of "
            "'openssl x509 -noout -fingerprint -sha256 -in cert.pem'"
        )
    digits = match.group(1).replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def normalise_pem(value: str, *, conn_id: str) -> str:
    """The CA certificate(s) as PEM with proper lines. A PEM pasted into a one-line field, whose
    line breaks became spaces (or literal \\n), is rebuilt; anything else is refused by name."""
    text = value.replace("\\n", "\n").strip()
    blocks = _PEM_BLOCK.findall(text)
    if not blocks or any(kind != "CERTIFICATE" for kind, _body in blocks):
        raise ConfigError(
            f"connection '{conn_id}': the CA certificate (PEM) field (ca_cert) holds no certificate: paste the whole "
            "PEM, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE----- (the server's CA, e.g. from "
            "'openssl s_client -showcerts -connect HOST:993'), or use cert_fingerprint instead"
        )
    out = []
    for _kind, body in blocks:
        digits = re.sub(r"\s+", "", body)
        if not re.fullmatch(r"[A-Za-z0-9+/=]+", digits):
            raise ConfigError(
                f"connection '{conn_id}': the CA certificate (PEM) field (ca_cert) is damaged between its BEGIN and END "
                "lines (only base64 may stand there): paste the certificate again from its file"
            )
        lines = [digits[i:i + 64] for i in range(0, len(digits), 64)]
        out.append("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n")
    return "".join(out)


@dataclass(frozen=True)
class OAuthSettings:
    """How to get an access token. ``secret`` is the client secret (microsoft_app), the service
    account's JSON key (google_service_account) or the refresh token (oauth2_refresh_token)."""

    kind: str
    secret: str = field(repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    tenant_id: str | None = None
    token_url: str | None = None
    scope: str | None = None
    authority_host: str = MICROSOFT_AUTHORITY
    certificate_thumbprint: str | None = None


@dataclass(frozen=True)
class ConnectionSettings:
    conn_id: str
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    provider: str = "generic"
    encryption: str = "tls"
    validate_certificate: bool = True
    ca_cert: str | None = field(default=None, repr=False)
    cert_fingerprint: str | None = None
    folder: str = "INBOX"
    address: str | None = None
    default_supplier: str | None = None
    timeout: float = 30.0
    allow_insecure_plaintext: bool = False
    oauth: OAuthSettings | None = None

    @property
    def auth(self) -> str:
        return self.oauth.kind if self.oauth else "password"

    @property
    def preset(self) -> Preset:
        return preset(self.provider)

    @property
    def account(self) -> str:
        """Identifies the mailbox in the ledger: user at host, never the port or the password, so that
        moving from STARTTLS on 143 to TLS on 993 keeps the cursor."""
        return f"{self.username}@{self.host.lower()}"

    @property
    def describe(self) -> str:
        how = "" if self.oauth is None else f", {self.oauth.kind}"
        return f"connection '{self.conn_id}' ({self.username} at {self.host}:{self.port}, {self.encryption}{how})"

    def port_mode_hint(self) -> str | None:
        """A static warning when the port and the TLS mode do not match the usual pairing."""
        if self.encryption == "tls" and self.port in WELL_KNOWN_PLAIN_PORTS:
            return (
                f"port {self.port} normally speaks STARTTLS or plaintext, not implicit TLS: "
                "set encryption=starttls, or use port 993 with encryption=tls"
            )
        if self.encryption in {"starttls", "none"} and self.port in WELL_KNOWN_TLS_PORTS:
            return (
                f"port {self.port} normally speaks implicit TLS: set encryption=tls, "
                "or use port 143 with encryption=starttls"
            )
        return None


def unprefixed(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Extra fields without the ``extra__<conn type>__`` prefix older Airflow forms wrote."""
    return {k.removeprefix("extra__imap_intake__").removeprefix("extra__imapintake__"): v for k, v in extra.items()}


def settings_from_fields(
    conn_id: str,
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
) -> ConnectionSettings:
    """Build settings from an Airflow connection's fields; provider presets fill the gaps."""
    extra = unprefixed(extra)
    provider = str(extra.get("provider") or "generic").lower()
    if provider not in PRESETS:
        raise ConfigError(
            f"connection '{conn_id}': provider {provider!r} is unknown; use one of {', '.join(PRESETS)}"
        )
    chosen = PRESETS[provider]
    host = (host or chosen.host or "").strip()
    if not host:
        raise ConfigError(f"connection '{conn_id}': the host is empty; set it to your IMAP server's name")
    encryption = str(extra.get("encryption") or chosen.encryption).lower()
    if encryption not in ENCRYPTIONS:
        raise ConfigError(
            f"connection '{conn_id}': encryption {encryption!r} is unknown; use tls (port 993), "
            "starttls (port 143) or none (loopback only)"
        )
    default_port = 993 if encryption == "tls" else (chosen.port if chosen.encryption == encryption else 143)
    try:
        port_number = int(port or default_port)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"connection '{conn_id}': port {port!r} is not a number") from exc
    if not login:
        raise ConfigError(
            f"connection '{conn_id}': login is empty; set it to the mailbox user (usually the full address)"
        )
    auth = str(extra.get("auth") or chosen.auth).lower()
    if auth not in AUTH_KINDS:
        raise ConfigError(f"connection '{conn_id}': auth {auth!r} is unknown; use one of {', '.join(AUTH_KINDS)}")
    if not password:
        raise ConfigError(f"connection '{conn_id}': {SECRET_LABELS[auth]} is empty (the Password field); {chosen.login_hint}")
    oauth = None if auth == "password" else oauth_from_fields(conn_id, auth, password, extra)
    allow_plain = _bool(
        extra.get("allow_insecure_plaintext"), conn_id=conn_id, name="allow_insecure_plaintext", default=False
    )
    if encryption == "none" and not is_loopback(host) and not allow_plain:
        raise ConfigError(
            f"connection '{conn_id}': encryption=none would send the password in plaintext to {host}; "
            "plaintext is allowed only to loopback hosts. Use encryption=tls (993) or starttls (143), "
            "or set extra allow_insecure_plaintext=true if this network is trusted"
        )
    if chosen.loopback_only and not is_loopback(host) and encryption == "none":
        raise ConfigError(f"connection '{conn_id}': Proton Bridge without TLS is only safe on loopback")
    fingerprint = extra.get("cert_fingerprint") or None
    try:
        timeout = float(extra.get("timeout") or 30)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"connection '{conn_id}': timeout {extra.get('timeout')!r} is not a number") from exc
    return ConnectionSettings(
        conn_id=conn_id,
        host=host,
        port=port_number,
        username=login,
        password=password,
        provider=provider,
        encryption=encryption,
        validate_certificate=_bool(
            extra.get("validate_certificate"), conn_id=conn_id, name="validate_certificate", default=True
        ),
        ca_cert=normalise_pem(str(extra["ca_cert"]), conn_id=conn_id) if extra.get("ca_cert") else None,
        cert_fingerprint=normalise_fingerprint(str(fingerprint), conn_id=conn_id) if fingerprint else None,
        folder=str(extra.get("folder") or "INBOX"),
        address=extra.get("address") or None,
        default_supplier=extra.get("default_supplier") or None,
        timeout=timeout,
        allow_insecure_plaintext=allow_plain,
        oauth=oauth,
    )


SECRET_LABELS = {
    "password": "the password",
    "microsoft_app": "the client secret (or the certificate's private key)",
    "google_service_account": "the service account's JSON key",
    "oauth2_refresh_token": "the refresh token",
}


def _required(conn_id: str, extra: Mapping[str, Any], name: str, where: str) -> str:
    value = str(extra.get(name) or "").strip()
    if not value:
        raise ConfigError(f"connection '{conn_id}': {name} is empty; {where}")
    return value


def oauth_from_fields(conn_id: str, kind: str, secret: str, extra: Mapping[str, Any]) -> OAuthSettings:
    """OAuth2 settings from the connection's extras; every missing value is named with where to find it."""
    if kind == "microsoft_app":
        return OAuthSettings(
            kind=kind, secret=secret,
            tenant_id=_required(conn_id, extra, "tenant_id", "copy the Directory (tenant) ID from the app's Overview page in the Entra admin center"),
            client_id=_required(conn_id, extra, "client_id", "copy the Application (client) ID from the app's Overview page in the Entra admin center"),
            scope=str(extra.get("scope") or MICROSOFT_SCOPE),
            authority_host=str(extra.get("authority_host") or MICROSOFT_AUTHORITY).rstrip("/"),
            certificate_thumbprint=str(extra.get("certificate_thumbprint") or "").replace(":", "") or None,
        )
    if kind == "google_service_account":
        import json

        try:
            key = json.loads(secret)
        except ValueError as exc:
            raise ConfigError(
                f"connection '{conn_id}': the Password field must hold the service account's whole JSON key "
                "(Google Cloud console > IAM > Service accounts > Keys > Add key > JSON), pasted as it is"
            ) from exc
        if not isinstance(key, dict) or key.get("type") != "service_account" or not key.get("private_key"):
            raise ConfigError(
                f"connection '{conn_id}': the JSON in the Password field is not a service account key "
                "(it needs \"type\": \"service_account\" and a private_key); download a JSON key for the service account"
            )
        return OAuthSettings(kind=kind, secret=secret, client_id=str(key.get("client_id") or ""), scope=str(extra.get("scope") or GOOGLE_SCOPE),
                             token_url=str(extra.get("token_url") or "") or None)
    client_secret = extra.get("client_secret") or None
    return OAuthSettings(
        kind=kind, secret=secret,
        token_url=_required(conn_id, extra, "token_url", "the provider's token endpoint, e.g. https://oauth2.googleapis.com/token "
                            "or https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"),
        client_id=_required(conn_id, extra, "client_id", "the OAuth client the refresh token was issued to"),
        client_secret=str(client_secret) if client_secret else None,
        scope=str(extra.get("scope") or "") or None,
    )

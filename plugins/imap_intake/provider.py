"""``get_provider_info()`` for the ``apache_airflow_provider`` entry point: the ``imapintake`` connection type."""

from __future__ import annotations

from typing import Any

from imap_intake import __version__

# The connection type. It was "imap_intake" until Airflow's api-server warned, for every connection it
# listed, that URI schemes may not contain "_" (RFC 3986); that name is still read (LegacyImapIntakeHook).
CONN_TYPE = "imapintake"
LEGACY_CONN_TYPE = "imap_intake"


def _field(label: str, kind: str | list[str], *, default: Any = None, description: str | None = None, **schema: Any) -> dict[str, Any]:
    types = kind if isinstance(kind, list) else [kind, "null"]
    spec: dict[str, Any] = {"label": label, "schema": {"type": types, **schema}}
    if default is not None:
        spec["schema"]["default"] = default
    if description:
        spec["description"] = description
    return spec


CONN_FIELDS = {
    "provider": _field("Provider preset", "string", default="generic", enum=["gmail", "office365", "proton_bridge", "generic"],
                       description="gmail: imap.gmail.com:993 TLS; office365: outlook.office365.com:993 TLS; "
                                   "proton_bridge: 127.0.0.1:1143 STARTTLS (local Bridge only); generic: port 993 TLS"),
    "auth": _field("Sign-in", "string", default="password",
                   enum=["password", "microsoft_app", "google_service_account", "oauth2_refresh_token"],
                   description="password: the Password field holds the password or app password. microsoft_app (Microsoft 365): "
                               "Password = the Entra app's client secret; set tenant_id and client_id. google_service_account "
                               "(Google Workspace): Password = the service account's JSON key. oauth2_refresh_token (any "
                               "provider): Password = the refresh token; set token_url, client_id, client_secret"),
    "tenant_id": _field("Tenant ID (Microsoft)", "string",
                        description="Entra admin center > App registrations > your app > Overview > Directory (tenant) ID"),
    "client_id": _field("Client ID", "string",
                        description="Microsoft: Overview > Application (client) ID. Refresh tokens: the OAuth client they were issued to"),
    "client_secret": _field("Client secret (refresh-token grant)", "string", format="password",
                            description="Only for oauth2_refresh_token with a confidential client; an aesgcm:v1: envelope works too"),
    "token_url": _field("Token URL", "string",
                        description="oauth2_refresh_token: the token endpoint, e.g. https://oauth2.googleapis.com/token or "
                                    "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"),
    "scope": _field("Scope", "string",
                    description="Defaults: https://outlook.office365.com/.default (microsoft_app), https://mail.google.com/ "
                                "(google_service_account); for a Microsoft delegated grant: "
                                "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"),
    "certificate_thumbprint": _field("Certificate thumbprint (Microsoft)", "string",
                                     description="Sign in with a certificate instead of a secret: its SHA-1 thumbprint "
                                                 "as shown under Certificates & secrets; the Password field then holds the private key (PEM)"),
    "authority_host": _field("Authority host (Microsoft)", "string", default="https://login.microsoftonline.com",
                             description="Change only for national clouds, e.g. https://login.microsoftonline.us"),
    "encryption": _field("Encryption", "string", default="tls", enum=["tls", "starttls", "none"],
                         description="tls = implicit TLS (port 993, default); starttls (port 143); none only to loopback hosts"),
    "validate_certificate": _field("Validate certificate", "boolean", default=True,
                                   description="Keep on. For a self-signed server supply the CA or a SHA-256 pin instead"),
    "ca_cert": _field("CA certificate (PEM)", "string", format="multiline",
                      description="Trust this CA for the server's certificate (and the token endpoint): paste the whole PEM, "
                                  "BEGIN and END lines included"),
    "cert_fingerprint": _field("Certificate SHA-256 fingerprint", "string",
                               description="Pin the server certificate (e.g. Proton Bridge's self-signed one)"),
    "folder": _field("Folder", "string", default="INBOX", description="Folder to poll, opened read-only"),
    "address": _field("Mailbox address", "string", description="The address this mailbox receives, for identification"),
    "default_supplier": _field("Default supplier", "string", description="Supplier for orders no sender rule matches"),
    "timeout": _field("Timeout (seconds)", "integer", default=30),
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "imap-intake",
        "name": "imap-intake",
        "description": "Exactly-once purchase-order intake from IMAP mailboxes.",
        "versions": [__version__],
        "integrations": [{"integration-name": "IMAP intake", "tags": ["protocol"]}],
        "hooks": [{"integration-name": "IMAP intake", "python-modules": ["imap_intake.hooks.imap"]}],
        "operators": [{"integration-name": "IMAP intake", "python-modules": ["imap_intake.operators.intake"]}],
        "connection-types": [
            _connection_type("imap_intake.hooks.imap.ImapIntakeHook", "IMAP mailbox (imap-intake)", CONN_TYPE),
            _connection_type("imap_intake.hooks.imap.LegacyImapIntakeHook",
                             "IMAP mailbox (imap-intake, old type name: prefer imapintake)", LEGACY_CONN_TYPE),
        ],
    }


def _connection_type(hook: str, name: str, conn_type: str) -> dict[str, Any]:
    return {
        "hook-class-name": hook,
        "hook-name": name,
        "connection-type": conn_type,
        "conn-fields": CONN_FIELDS,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "extra"],
            "relabeling": {"login": "Username (mailbox address)",
                           "password": "Password / app password / client secret / JSON key / refresh token"},
            "placeholders": {
                "host": "imap.gmail.com",
                "port": "993",
                "login": "usually the full email address, e.g. orders@example.com",
                "password": "see Sign-in: a password, an app password, or the OAuth2 secret",
            },
        },
    }

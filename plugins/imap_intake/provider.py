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
                       description="Fills what you leave blank below. gmail: imap.gmail.com:993 TLS, password sign-in (an app "
                                   "password); office365: outlook.office365.com:993 TLS, Microsoft Entra app sign-in; "
                                   "proton_bridge: 127.0.0.1:1143 STARTTLS (a local Bridge only); generic: port 993 TLS"),
    "auth": _field("Sign-in", "string", enum=["password", "microsoft_app", "google_service_account", "oauth2_refresh_token"],
                   description="Blank: the preset's (office365: microsoft_app; the others: password). password: the Password field "
                               "holds the password or app password. microsoft_app: Password = the Entra app's client secret; set "
                               "the two Microsoft IDs below. google_service_account: Password = the service account's JSON key. "
                               "oauth2_refresh_token: Password = the refresh token; set Token URL and Client ID. Fields of "
                               "another sign-in kind are not used and not saved"),
    "tenant_id": _field("Tenant ID (Microsoft app sign-in only)", "string",
                        description="Entra admin center > App registrations > your app > Overview > Directory (tenant) ID"),
    "client_id": _field("Client ID (Microsoft app or refresh-token sign-in only)", "string",
                        description="Microsoft: Overview > Application (client) ID. Refresh tokens: the OAuth client they were issued to"),
    "client_secret": _field("Client secret (refresh-token sign-in only)", "string", format="password",
                            description="For a confidential OAuth client; an aesgcm:v1: envelope works too. Microsoft app "
                                        "sign-in puts its client secret in the Password field instead"),
    "token_url": _field("Token URL (refresh-token sign-in only)", "string",
                        description="The token endpoint, e.g. https://oauth2.googleapis.com/token or "
                                    "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"),
    "scope": _field("Scope (OAuth2 sign-in only; blank: the default)", "string",
                    description="Defaults: https://outlook.office365.com/.default (microsoft_app), https://mail.google.com/ "
                                "(google_service_account); for a Microsoft delegated grant: "
                                "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"),
    "certificate_thumbprint": _field("Certificate thumbprint (Microsoft app sign-in only)", "string",
                                     description="Sign in with a certificate instead of a secret: its SHA-1 thumbprint "
                                                 "as shown under Certificates & secrets; the Password field then holds the private key (PEM)"),
    "authority_host": _field("Authority host (Microsoft app sign-in only)", "string",
                             description="Blank: https://login.microsoftonline.com. Change only for national clouds, e.g. "
                                         "https://login.microsoftonline.us"),
    "encryption": _field("Encryption", "string", enum=["tls", "starttls", "none"],
                         description="Blank: the preset's (tls on port 993; Proton Bridge: starttls on 1143). tls = implicit TLS; "
                                     "starttls (port 143); none only to loopback hosts"),
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
                "host": "blank: the preset's (imap.gmail.com, outlook.office365.com, 127.0.0.1)",
                "port": "blank: the preset's (993; Proton Bridge 1143)",
                "login": "usually the full email address, e.g. orders@example.com",
                "password": "see Sign-in: a password, an app password, or the OAuth2 secret",
            },
        },
    }

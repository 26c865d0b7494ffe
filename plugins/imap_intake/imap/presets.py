"""Known mail providers: where they listen and what users must know about them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    host: str
    port: int
    encryption: str
    login_hint: str
    loopback_only: bool = False
    auth: str = "password"


PRESETS: dict[str, Preset] = {
    "gmail": Preset(
        "gmail", "Gmail / Google Workspace", "imap.gmail.com", 993, "tls",
        "Gmail refuses your normal password when 2-Step Verification is on: create an app "
        "password (Google Account > Security > App passwords) and make sure IMAP is enabled; where "
        "the Workspace admin has turned app passwords off, use auth google_service_account "
        "(a service account with domain-wide delegation) or oauth2_refresh_token.",
    ),
    "office365": Preset(
        "office365", "Microsoft 365 / Outlook.com", "outlook.office365.com", 993, "tls",
        "Microsoft 365 no longer accepts passwords or app passwords for IMAP (basic authentication "
        "was retired): use auth microsoft_app with an Entra app that has IMAP.AccessAsApp "
        "(docs/connections.md walks through it), or oauth2_refresh_token for a delegated grant.",
        auth="microsoft_app",
    ),
    "proton_bridge": Preset(
        "proton_bridge", "Proton Mail Bridge", "127.0.0.1", 1143, "starttls",
        "Proton Bridge shows its own IMAP password in the Bridge app (not your Proton password); "
        "Bridge must run on a host the Airflow workers can reach.",
        loopback_only=True,
    ),
    "generic": Preset(
        "generic", "Any IMAP server", "", 993, "tls",
        "Check the user name (usually the full email address) and password with your mail admin; "
        "accounts with two-factor sign-in usually need an app password (or OAuth2: auth oauth2_refresh_token).",
    ),
}

WELL_KNOWN_TLS_PORTS = frozenset({993})
WELL_KNOWN_PLAIN_PORTS = frozenset({143, 1143})


def preset(name: str | None) -> Preset:
    return PRESETS.get((name or "generic").lower(), PRESETS["generic"])

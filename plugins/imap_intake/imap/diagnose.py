"""Test connection: connect, log in, EXAMINE the folder, and say in plain words what happened."""

from __future__ import annotations

from dataclasses import dataclass

from imap_intake.exceptions import ImapIntakeError
from imap_intake.imap.mailbox import Mailbox
from imap_intake.imap.settings import ConnectionSettings

TOKEN_KINDS = {
    "microsoft_app": "a Microsoft Entra app token",
    "google_service_account": "a Google service-account token",
    "oauth2_refresh_token": "an OAuth2 access token from the refresh token",
}


@dataclass(frozen=True)
class Diagnosis:
    ok: bool
    message: str


def diagnose(settings: ConnectionSettings) -> Diagnosis:
    hint = settings.port_mode_hint()
    try:
        with Mailbox.open(settings) as mailbox:
            state = mailbox.examine()
            caps = set(mailbox.capabilities)
            mechanism = mailbox.signed_in.mechanism
    except ImapIntakeError as exc:
        message = str(exc)
        if hint and hint not in message:
            message += f" (note: {hint})"
        return Diagnosis(False, message)
    how = "" if settings.oauth is None else f" with {TOKEN_KINDS.get(settings.oauth.kind, settings.oauth.kind)} ({mechanism})"
    offers = ", ".join(
        f"{name} {'offered' if name in caps else 'not offered'}" for name in ("IDLE", "CONDSTORE")
    )
    return Diagnosis(
        True,
        f"Connected to {settings.host}:{settings.port} ({settings.encryption}) as {settings.username}{how}; "
        f"folder '{state.name}' opened read-only: {state.exists} messages, UIDVALIDITY {state.uidvalidity}, "
        f"UIDNEXT {state.uidnext}; {offers}.",
    )

"""``ImapIntakeHook``: turns an ``imap_intake`` Airflow connection into a logged-in, read-only mailbox.

The hook connects and nothing else: polling, extraction and the ledger live in ``service``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseHook

from imap_intake import crypto
from imap_intake.airflow_connections import get_connection
from imap_intake.exceptions import ConfigError, ImapIntakeError
from imap_intake.imap.diagnose import diagnose
from imap_intake.imap.form import unused_fields
from imap_intake.imap.mailbox import Mailbox
from imap_intake.imap.presets import preset
from imap_intake.imap.settings import ConnectionSettings, settings_from_fields, unprefixed
from imap_intake.provider import CONN_TYPE, LEGACY_CONN_TYPE


def mask(secret: str) -> None:
    """Register a secret with Airflow's masker (task logs, and the supervisor when inside a task)."""
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


def resolve_password(conn_id: str, password: str | None, *, mailbox: str | None = None) -> str | None:
    """Open an AES-256-GCM envelope; plain passwords (Fernet-encrypted by Airflow) pass through."""
    if password and crypto.is_envelope(password):
        mask(password)
        password = crypto.KeyRing.from_env().decrypt(password, conn_id=conn_id, mailbox=mailbox)
    if password:
        mask(password)
    return password


class ImapIntakeHook(BaseHook):
    conn_name_attr = "imap_conn_id"
    default_conn_name = "imap_intake_default"
    conn_type = CONN_TYPE
    hook_name = "IMAP mailbox (imap-intake)"

    def __init__(self, imap_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.imap_conn_id = imap_conn_id

    def _connection(self) -> Any:
        """The connection, from the Task SDK, secrets backends or the metadata database."""
        try:
            return get_connection(self.imap_conn_id)
        except Exception as exc:
            raise ConfigError(
                f"connection '{self.imap_conn_id}' is not defined: add it in Admin > Connections "
                f"(type '{CONN_TYPE}') or as AIRFLOW_CONN_{self.imap_conn_id.upper()}"
            ) from exc

    def _extra(self, conn: Any) -> dict[str, Any]:
        """The extra fields, parsed here rather than by ``conn.extra_dejson``: that registers every
        value with Airflow's secrets masker (``tls``, ``INBOX``, the supplier's name...), which then
        stars them out of every task log and warns about short "secrets". Only secrets are registered
        (the password and client secret, in ``resolve_password``)."""
        if not conn.extra:
            return {}
        try:
            extra = json.loads(conn.extra)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"connection '{self.imap_conn_id}': the Extra field is not valid JSON ({exc.msg}); "
                              "fix it in Admin > Connections") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"connection '{self.imap_conn_id}': the Extra field must be a JSON object")
        return extra

    def get_settings(self) -> ConnectionSettings:
        conn = self._connection()
        return self._settings(conn, self._extra(conn))

    def _settings(self, conn: Any, extra: dict[str, Any]) -> ConnectionSettings:
        extra = unprefixed(extra)
        host = conn.host or preset(str(extra.get("provider") or "")).host
        mailbox = crypto.mailbox_of(conn.login, host)
        if extra.get("client_secret"):
            extra["client_secret"] = resolve_password(self.imap_conn_id, str(extra["client_secret"]), mailbox=mailbox)
        return settings_from_fields(
            self.imap_conn_id,
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=resolve_password(self.imap_conn_id, conn.password, mailbox=mailbox),
            extra=extra,
        )

    @contextmanager
    def mailbox(self) -> Iterator[Mailbox]:
        with Mailbox.open(self.get_settings()) as mailbox:
            yield mailbox

    def get_conn(self) -> Mailbox:
        raise NotImplementedError("use 'with hook.mailbox() as mailbox:' so the session is always closed")

    def diagnosis(self) -> tuple[bool, str]:
        """Whether the connection works, and what to do when it does not (naming the connection)."""
        try:
            conn = self._connection()
            extra = self._extra(conn)
            settings = self._settings(conn, extra)
        except ImapIntakeError as exc:
            return False, str(exc)
        result = diagnose(settings)
        unused = unused_fields(extra)
        note = (f" Not used by sign-in '{settings.auth}', so ignored: {', '.join(unused)}." if unused else "")
        return result.ok, result.message + note

    def test_connection(self) -> tuple[bool, str]:
        """The diagnosis, naming "this connection": the UI tests under a temporary id nobody knows."""
        ok, message = self.diagnosis()
        return ok, message.replace(f"connection '{self.imap_conn_id}'", "this connection")


class LegacyImapIntakeHook(ImapIntakeHook):
    """Connections saved under the old type name keep their form and their Test button."""

    conn_type = LEGACY_CONN_TYPE
    hook_name = "IMAP mailbox (imap-intake, old type name: prefer imapintake)"

"""``ImapIntakeHook``: turns an ``imap_intake`` Airflow connection into a logged-in, read-only mailbox.

The hook connects and nothing else: polling, extraction and the ledger live in ``service``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseHook

from imap_intake import crypto
from imap_intake.exceptions import ConfigError, ImapIntakeError
from imap_intake.imap.diagnose import diagnose
from imap_intake.imap.mailbox import Mailbox
from imap_intake.imap.presets import preset
from imap_intake.imap.settings import ConnectionSettings, settings_from_fields


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
    conn_type = "imap_intake"
    hook_name = "IMAP mailbox (imap-intake)"

    def __init__(self, imap_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.imap_conn_id = imap_conn_id

    def _connection(self) -> Any:
        """The connection: through the Task SDK inside a task; outside one (the imap-intake command,
        the API server) also from Airflow's metadata database, as ``airflow connections get`` does."""
        try:
            return self.get_connection(self.imap_conn_id)
        except Exception as first:  # Airflow raises its own not-found type, which differs by context
            import sys

            in_task = hasattr(sys.modules.get("airflow.sdk.execution_time.task_runner"), "SUPERVISOR_COMMS")
            if not in_task:
                try:
                    import warnings

                    from airflow.models.connection import Connection as MetadataConnection

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        return MetadataConnection.get_connection_from_secrets(self.imap_conn_id)
                except Exception:  # noqa: BLE001 - not there either: the first error says what to do
                    pass
            raise ConfigError(
                f"connection '{self.imap_conn_id}' is not defined: add it in Admin > Connections "
                f"(type 'imap_intake') or as AIRFLOW_CONN_{self.imap_conn_id.upper()}"
            ) from first

    def get_settings(self) -> ConnectionSettings:
        conn = self._connection()
        extra = dict(conn.extra_dejson)
        host = conn.host or preset(str(extra.get("provider") or extra.get("extra__imap_intake__provider") or "")).host
        mailbox = crypto.mailbox_of(conn.login, host)
        for key in ("client_secret", "extra__imap_intake__client_secret"):
            if extra.get(key):
                extra[key] = resolve_password(self.imap_conn_id, str(extra[key]), mailbox=mailbox)
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

    def test_connection(self) -> tuple[bool, str]:
        """The diagnosis, naming "this connection": the UI tests under a temporary id nobody knows."""
        try:
            settings = self.get_settings()
        except ImapIntakeError as exc:
            return False, self._unnamed(str(exc))
        result = diagnose(settings)
        return result.ok, self._unnamed(result.message)

    def _unnamed(self, message: str) -> str:
        return message.replace(f"connection '{self.imap_conn_id}'", "this connection")

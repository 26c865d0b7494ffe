"""Looking up an Airflow connection from wherever this code runs.

Inside a task the Task SDK asks the supervisor. Outside one (the ``imap-intake`` command, the API
server serving the status page) the SDK sees environment variables and secrets backends only, so
the metadata database is read as well, as ``airflow connections get`` does.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any


def in_task() -> bool:
    return hasattr(sys.modules.get("airflow.sdk.execution_time.task_runner"), "SUPERVISOR_COMMS")


def get_connection(conn_id: str) -> Any:
    """The connection, or the SDK's own error when no source has it (callers translate it)."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # Airflow raises its own not-found type, which differs by context
        if in_task():
            raise
        try:
            from airflow.models.connection import Connection as MetadataConnection

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return MetadataConnection.get_connection_from_secrets(conn_id)
        except Exception:  # noqa: BLE001 - not there either: re-raise the SDK's error
            pass
        raise

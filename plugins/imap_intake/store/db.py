"""Connections to our own Postgres and the migrations that shape it.

Tasks may not use Airflow's ORM, so the ledger lives in its own database, reached through
an Airflow ``postgres`` connection (``imap_intake_db`` by default) or a DSN.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources

import psycopg
from psycopg.conninfo import make_conninfo

from imap_intake.exceptions import ConfigError, ImapIntakeError

log = logging.getLogger(__name__)
_MIGRATION_LOCK = 0x1A9_0001


class LedgerUnavailable(ImapIntakeError):
    """The ledger database could not be reached (transient)."""

    retryable = True


def connect_dsn(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=15, application_name="imap-intake")
    except psycopg.OperationalError as exc:
        raise LedgerUnavailable(f"cannot reach the ledger database: {exc}") from exc


def dsn_for_connection(conn_id: str) -> str:
    """Build a libpq DSN from an Airflow ``postgres`` connection."""
    from imap_intake.airflow_connections import get_connection

    try:
        conn = get_connection(conn_id)
    except Exception as exc:  # Airflow's not-found type differs between contexts
        raise ConfigError(
            f"postgres connection '{conn_id}' is not defined: add it in Admin > Connections (type 'postgres') "
            f"or set AIRFLOW_CONN_{conn_id.upper()}"
        ) from exc
    return make_conninfo(
        host=conn.host or "localhost", port=conn.port or 5432, user=conn.login or "",
        password=conn.password or "", dbname=conn.schema or "postgres",
    )


def connect(conn_id: str) -> psycopg.Connection:
    return connect_and_migrate(dsn_for_connection(conn_id))


def connect_and_migrate(dsn: str) -> psycopg.Connection:
    connection = connect_dsn(dsn)
    migrate(connection)
    return connection


@functools.cache
def migrations() -> tuple[tuple[str, str], ...]:
    """The package's SQL migrations, in order (read once per process: they ship with the code)."""
    folder = resources.files("imap_intake.store") / "migrations"
    return tuple(sorted((p.name, p.read_text()) for p in folder.iterdir() if p.name.endswith(".sql")))


def migrate(connection: psycopg.Connection) -> list[str]:
    """Apply the repo's SQL migrations that are missing, once, under an advisory lock. A database
    that has the newest one already costs two reads (every poll and idle check connects through here)."""
    if _has_latest(connection):
        return []
    applied: list[str] = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        connection.execute("CREATE SCHEMA IF NOT EXISTS imap_intake")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS imap_intake.schema_migration "
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in connection.execute("SELECT version FROM imap_intake.schema_migration")}
        for name, sql in migrations():
            if name in done:
                continue
            connection.execute(sql)  # type: ignore[arg-type]  # trusted files from the package
            connection.execute("INSERT INTO imap_intake.schema_migration (version) VALUES (%s)", (name,))
            applied.append(name)
            log.info("applied migration %s", name)
    return applied


def _has_latest(connection: psycopg.Connection) -> bool:
    """Whether the newest migration is recorded (they are applied in order, in one transaction)."""
    newest = migrations()[-1][0]
    if connection.execute("SELECT to_regclass('imap_intake.schema_migration')").fetchone() in (None, (None,)):
        return False
    return connection.execute("SELECT 1 FROM imap_intake.schema_migration WHERE version = %s", (newest,)).fetchone() is not None

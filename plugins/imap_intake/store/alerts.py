"""What a failed run's verdict reads from the ledger, and the one write it makes: an alert row.

A workspace is *stale* when its last successful poll (a regular poll, not a backfill) or idle check
(a run the triggerer found quiet, ``imap_intake.idle_check``) is older than ``stale_after`` - or,
when it never had one, its first poll attempt is. Each stale episode is alerted once: the row's
unique key (workspace, kind, episode), with the episode named by the moment of that last success
(epoch seconds; 0 when there was none), decides that in Postgres, whichever run's verdict gets
there first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True)
class StaleAlert:
    """A stale episode this call claimed: alert about it (nobody else will)."""

    workspace: str
    episode: int
    last_ok: dt.datetime | None
    since: dt.datetime
    message: str


def run_polls(connection: psycopg.Connection, workspace: str, run_id: str) -> list[dict[str, Any]]:
    """The polls an Airflow run made (one per try), newest first."""
    with connection.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, mode, status, error, started_at, since, until FROM imap_intake.poll "
            "WHERE workspace=%s AND run_id=%s ORDER BY id DESC LIMIT 20", (workspace, run_id)).fetchall()


def claim_stale_alert(connection: psycopg.Connection, workspace: str, *, stale_after: dt.timedelta,
                      now: dt.datetime) -> StaleAlert | None:
    """The workspace's stale episode, if it is stale and nobody has alerted about this episode yet."""
    row = connection.execute(
        """
        WITH ok AS (SELECT greatest((SELECT max(finished_at) FROM imap_intake.poll
                                     WHERE workspace = %(w)s AND mode = 'poll' AND status = 'ok'),
                                    (SELECT checked_at FROM imap_intake.idle_check WHERE workspace = %(w)s)) AS at),
             tried AS (SELECT min(started_at) AS at FROM imap_intake.poll WHERE workspace = %(w)s)
        INSERT INTO imap_intake.alert (workspace, kind, episode, detail)
        SELECT %(w)s, 'stale', coalesce(floor(extract(epoch FROM ok.at))::bigint, 0),
               CASE WHEN ok.at IS NULL THEN 'no successful poll since the first attempt'
                    ELSE 'no successful poll or idle check since ' || to_char(ok.at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' END
        FROM ok, tried
        WHERE coalesce(ok.at, tried.at) < %(limit)s
        ON CONFLICT (workspace, kind, episode) DO NOTHING
        RETURNING episode, (SELECT at FROM ok), (SELECT at FROM tried)
        """,
        {"w": workspace, "limit": now - stale_after},
    ).fetchone()
    if row is None:
        return None
    episode, last_ok, first_try = int(row[0]), row[1], row[2]
    since = last_ok or first_try
    hours = (now - since).total_seconds() / 3600
    said = (f"last successful poll {last_ok:%Y-%m-%d %H:%M} UTC" if last_ok
            else f"no successful poll since the first attempt at {first_try:%Y-%m-%d %H:%M} UTC")
    return StaleAlert(workspace, episode, last_ok, since,
                      f"workspace '{workspace}' is stale: {said}, {hours:.1f} h ago (alert after {_human(stale_after)})")


def _human(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

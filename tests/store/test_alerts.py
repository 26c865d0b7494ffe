"""The stale alert is claimed once per episode, by whichever failed run's verdict gets there first."""

from __future__ import annotations

import datetime as dt

import pytest

from imap_intake.store.alerts import claim_stale_alert, run_polls
from imap_intake.store.ledger import Ledger

pytestmark = pytest.mark.integration
HOUR = dt.timedelta(hours=1)


def test_a_stale_workspace_is_alerted_once_per_episode(db, unique) -> None:  # type: ignore[no-untyped-def]
    slug = unique("stale")
    ledger = Ledger(db, workspace=slug, account="u@h", folder="INBOX")
    first = ledger.refused_poll("poll", error="login rejected", run_id="r1")
    start = db.execute("SELECT started_at FROM imap_intake.poll WHERE id=%s", (first,)).fetchone()[0]
    assert claim_stale_alert(db, slug, stale_after=HOUR, now=start + HOUR / 2) is None  # not stale yet
    alert = claim_stale_alert(db, slug, stale_after=HOUR, now=start + 2 * HOUR)
    assert alert is not None and alert.episode == 0 and "no successful poll since the first attempt" in alert.message
    assert claim_stale_alert(db, slug, stale_after=HOUR, now=start + 3 * HOUR) is None  # the same episode: once
    ok = ledger.start_poll("poll", run_id="r2")
    ledger.finish_poll(ok, status="ok", fetched=0, imported=0)
    backfill = ledger.start_poll("backfill", run_id="r3")
    ledger.finish_poll(backfill, status="ok", fetched=0, imported=0)  # a backfill is not a poll of new mail
    finished = db.execute("SELECT finished_at FROM imap_intake.poll WHERE id=%s", (ok,)).fetchone()[0]
    assert claim_stale_alert(db, slug, stale_after=HOUR, now=finished + HOUR / 2) is None
    again = claim_stale_alert(db, slug, stale_after=HOUR, now=finished + 2 * HOUR)
    assert again is not None and again.episode == int(finished.timestamp()) and f"last successful poll {finished:%Y-%m-%d %H:%M} UTC" in again.message
    assert [p["id"] for p in run_polls(db, slug, "r1")] == [first]
    # A run the triggerer found quiet counts as a success: a new episode starts from it.
    checked = finished + 3 * HOUR
    db.execute("INSERT INTO imap_intake.idle_check (workspace, account, folder, checked_at, reason) VALUES (%s, 'u@h', 'INBOX', %s, 'quiet')",
               (slug, checked))
    assert claim_stale_alert(db, slug, stale_after=HOUR, now=checked + HOUR / 2) is None
    third = claim_stale_alert(db, slug, stale_after=HOUR, now=checked + 2 * HOUR)
    assert third is not None and third.episode == int(checked.timestamp())

"""The operators' own logic: which window a run polls."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from airflow.utils.types import DagRunType

from imap_intake.operators.intake import backfill_window

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def context(run_type: DagRunType) -> dict[str, object]:
    return {"dag_run": SimpleNamespace(run_type=run_type), "data_interval_start": START, "data_interval_end": END}


def test_a_backfill_run_polls_its_data_interval() -> None:
    assert backfill_window(context(DagRunType.BACKFILL_JOB), "", "") == (START, END)


def test_scheduled_and_manual_runs_poll_incrementally() -> None:
    assert backfill_window(context(DagRunType.SCHEDULED), "", "") == (None, None)
    assert backfill_window(context(DagRunType.MANUAL), "", "") == (None, None)


def test_conf_window_wins() -> None:
    assert backfill_window(context(DagRunType.MANUAL), "2026-01-01", "2026-02-01") == ("2026-01-01", "2026-02-01")

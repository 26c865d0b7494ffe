"""Backfills through Airflow's own machinery: `airflow backfill create`, executed by a real scheduler
(LocalExecutor), api-server and dag-processor, with Airflow's metadata in Postgres."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.airflow_cluster import AirflowCluster
from devstack.dovecot import flags
from devstack.samples import message, po_pdf
from tests.airflow_version import STARTS_IN_TRIGGERER
from tests.service.helpers import attachment_rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.fixture(scope="module")
def cluster(postgres, dovecot, tmp_path_factory) -> Iterator[tuple[AirflowCluster, str, str]]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("backfill")
    user = f"backfill{secrets.token_hex(3)}@example.test"
    dovecot.add_user(user)
    slug = f"bf{secrets.token_hex(3)}"
    workspaces = root / "workspaces.yaml"
    workspaces.write_text(
        "workspaces:\n"
        f"  - {{slug: {slug}, imap_conn_id: imap_backfill, schedule: '0 6 * * *', start_date: 2026-01-01, "
        f"storage_base: 'file://{root}/store', default_supplier: Someone, pool: default_pool, import_tasks: 1}}\n"
    )
    assert dovecot.tls_files is not None
    env = {
        "IMAP_INTAKE_WORKSPACES_FILE": str(workspaces),
        "AIRFLOW_CONN_IMAP_INTAKE_DB": json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port,
                                                   "login": postgres.user, "password": postgres.password, "schema": postgres.database}),
        # The earlier connection type name: still read.
        "AIRFLOW_CONN_IMAP_BACKFILL": json.dumps({"conn_type": "imap_intake", "host": "127.0.0.1", "port": dovecot.tls_port,
                                                  "login": user, "password": dovecot.password,
                                                  "extra": {"ca_cert": dovecot.tls_files.ca_pem}}),
    }
    metadata = postgres.create_database(f"airflow_{secrets.token_hex(3)}")
    airflow = AirflowCluster.create(root / "airflow", metadata, extra_env=env)
    airflow.migrate()
    airflow.start()
    try:
        airflow.wait_for_dag(f"imap_intake__{slug}")
        yield airflow, slug, user
    finally:
        airflow.stop()


def _wait_for_runs(airflow: AirflowCluster, dag_id: str, prefix: str, count: int, timeout: float = 300) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in airflow.dag_runs(dag_id) if str(r.get("run_id", "")).startswith(prefix)]
        if len(runs) >= count and all(r.get("state") in {"success", "failed"} for r in runs):
            return runs
        time.sleep(1)
    raise TimeoutError(f"{prefix} runs of {dag_id} did not finish: {airflow.dag_runs(dag_id)}")


def test_airflow_backfill_rescans_its_window_imports_once_and_never_moves_the_cursor(cluster, dovecot, append, db) -> None:  # type: ignore[no-untyped-def]
    airflow, slug, user = cluster
    dag_id = f"imap_intake__{slug}"
    recent = message(sender="buyer@acme.example", to=user, subject="recent", attachments=[("r.pdf", "application/pdf", po_pdf("R"))])
    append(user, [(recent.as_bytes(), None)])
    # Switched on, the DAG runs its latest interval at once (a regular poll): the cursor covers the folder.
    # Its next scheduled run is tomorrow at 06:00, so nothing but the backfill reads what comes next.
    airflow.airflow("dags", "unpause", dag_id)
    _wait_for_runs(airflow, dag_id, "scheduled__", 1)
    cursor = db.execute("SELECT uidvalidity, last_uid FROM imap_intake.cursor WHERE workspace=%s", (slug,)).fetchone()
    assert cursor is not None and cursor[1] == 1
    # Mail from March that never arrived through a poll (restored from an archive into the folder):
    # INTERNALDATE in the window, UID above the cursor.
    march = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
    old = message(sender="buyer@acme.example", to=user, subject="march", date=march,
                  attachments=[("march.pdf", "application/pdf", po_pdf("M"))])
    append(user, [(old.as_bytes(), march)])
    before_flags = flags(dovecot, user)
    airflow.airflow("backfill", "create", "--dag-id", dag_id, "--from-date", "2026-03-09", "--to-date", "2026-03-12")
    runs = _wait_for_runs(airflow, dag_id, "backfill__", 3)  # logical dates 03-09, 03-10, 03-11 at 06:00
    assert all(r["state"] == "success" for r in runs), runs
    polls = db.execute("SELECT mode, status, since FROM imap_intake.poll WHERE workspace=%s AND mode='backfill' ORDER BY id", (slug,)).fetchall()
    # The runs start together, in any order: the first to take the folder's lock sweeps from its window to now,
    # each later one reads only the gap no scan holds yet (or nothing); a run whose idle check, in the triggerer,
    # already finds its window scanned ends there, without a poll row or a worker.
    assert 1 <= len(polls) <= 3 and polls[0][1] == "ok" and {p[1] for p in polls} <= {"ok", "covered"}, polls
    reach = db.execute("SELECT min(since) FROM imap_intake.backfill_scan WHERE workspace=%s", (slug,)).fetchone()[0]
    assert reach == dt.datetime(2026, 3, 9, 6, 0, tzinfo=dt.UTC)
    assert all(p[2] is not None for p in polls)  # the window is recorded
    rows = attachment_rows(db, slug)
    assert len(rows) == 2  # recent + march, once each
    after = db.execute("SELECT uidvalidity, last_uid FROM imap_intake.cursor WHERE workspace=%s", (slug,)).fetchone()
    assert after == cursor  # a backfill never moves the cursor
    assert flags(dovecot, user) == before_flags
    # The same backfill again: nothing new, no second copy.
    # The scheduler marks the first backfill completed a moment after its last run: until then Airflow
    # refuses a second one (AlreadyRunningBackfill).
    first_polls = len(polls)
    started = dt.datetime.now(dt.UTC)
    deadline = time.monotonic() + 120
    while True:
        again = airflow.airflow("backfill", "create", "--dag-id", dag_id, "--from-date", "2026-03-09", "--to-date", "2026-03-12",
                                "--reprocess-behavior", "completed", check=False)
        if again.returncode == 0:
            break
        assert "AlreadyRunningBackfill" in again.stdout + again.stderr and time.monotonic() < deadline, again.stderr[-2000:]
        time.sleep(2)
    deadline = time.monotonic() + 300
    while True:  # the same three runs, cleared and run again
        runs = [r for r in airflow.dag_runs(dag_id) if str(r.get("run_id", "")).startswith("backfill__")]
        if len(runs) == 3 and all(r.get("state") == "success" and r.get("end_date")
                                  and dt.datetime.fromisoformat(str(r["end_date"])) > started for r in runs):
            break
        assert time.monotonic() < deadline, f"the second backfill did not run: {runs}"
        time.sleep(1)
    assert len(attachment_rows(db, slug)) == 2
    assert db.execute("SELECT last_uid FROM imap_intake.cursor WHERE workspace=%s", (slug,)).fetchone()[0] == cursor[1]
    # No IMAP session and no worker at all: the triggerer's idle check finds each window inside the first backfill's
    # fresh scan and ends the run there (no poll row is written for it).
    later = db.execute("SELECT status FROM imap_intake.poll WHERE workspace=%s AND mode='backfill' ORDER BY id", (slug,)).fetchall()
    if not STARTS_IN_TRIGGERER:  # Airflow 3.2: each run's poll ran on a worker and found its window covered
        assert [status for (status,) in later[first_polls:]] == ["covered"] * 3, later
        return
    assert len(later) == first_polls
    check = db.execute("SELECT reason FROM imap_intake.idle_check WHERE workspace=%s", (slug,)).fetchone()
    assert check is not None and "lies inside backfill scan" in check[0]
    for run in runs:
        states = json.loads(airflow.airflow("tasks", "states-for-dag-run", dag_id, str(run["run_id"]), "-o", "json").stdout)
        assert {t["task_id"]: t["state"] for t in states}["poll_mailbox"] == "skipped", states
    airflow.airflow("dags", "pause", dag_id)


def test_a_bad_window_fails_the_run_at_once_with_a_configuration_message(cluster) -> None:  # type: ignore[no-untyped-def]
    airflow, slug, _user = cluster
    dag_id = f"imap_intake__{slug}"
    # Not a date: Airflow refuses to create the run (the trigger form's date params), naming the field.
    done = airflow.airflow("dags", "test", dag_id, "--conf", json.dumps({"since": "2026-13-01", "until": "2026-14-01"}), check=False, timeout=300)
    text = done.stdout + done.stderr
    assert done.returncode != 0 and "Invalid input for param since" in text and "is not a 'date'" in text
    assert "up_for_retry" not in text.lower()
    # Dates, but an empty window: the poll fails at once with our configuration message, no retries.
    done = airflow.airflow("dags", "test", dag_id, "--conf", json.dumps({"since": "2026-05-01", "until": "2026-04-01"}), check=False, timeout=300)
    text = done.stdout + done.stderr
    assert "backfill window is empty: since (2026-05-01T00:00:00+00:00) is not before until (2026-04-01 (the last day re-checked))" in text
    assert "up_for_retry" not in text.lower()
    assert Path(airflow.home).exists()

"""A failure is never green, through a real scheduler, dag-processor and LocalExecutor: a poll that
cannot log in fails its run (the run's verdict task), the workspace's notifiers hear about every
failed run (Airflow's on_failure_callback) and once about the stale workspace, a fixed password
lets the next run import what waited, and a refused backfill window fails its run and is recorded
as a failed poll with the reason."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.airflow_cluster import AirflowCluster
from devstack.samples import message, po_pdf
from tests.airflow_version import STARTS_IN_TRIGGERER
from tests.notifications import calls

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
STALE_AFTER_SECONDS = 15
#: What no task log of ours may hold: warnings that would repeat in every task of every run.
NOISE = ("DeprecationWarning", "GitWildMatchPattern", "Skipping masking for a secret", "HMAC key", "InsecureKeyLengthWarning")


@dataclass
class RunState:
    airflow: AirflowCluster
    dag_id: str
    slug: str
    notified: Path
    connection: dict[str, object]
    right_password: str


@pytest.fixture(scope="module")
def stack(postgres, dovecot, tmp_path_factory) -> Iterator[RunState]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("runstate")
    user = f"runstate{secrets.token_hex(3)}@example.test"
    dovecot.add_user(user)
    slug = f"rs{secrets.token_hex(3)}"
    notified = root / "notified.jsonl"
    notifier = {"notifier": "tests.notifications.RecordingNotifier", "path": str(notified), "text": "{{ dag.dag_id }} needs you"}
    (root / "workspaces.yaml").write_text(
        "workspaces:\n"
        f"  - slug: {slug}\n"
        "    imap_conn_id: imap_runstate\n"
        "    schedule: '0 6 1 1 *'\n"  # no scheduled run during the test: every run is triggered
        "    start_date: 2026-01-01\n"
        f"    storage_base: file://{root}/store\n"
        "    default_supplier: Someone\n"
        "    pool: default_pool\n"
        "    import_tasks: 1\n"
        "    alerts:\n"
        f"      on_failure: [{json.dumps(notifier)}]\n"
        f"      stale_after: {STALE_AFTER_SECONDS}s\n"
    )
    assert dovecot.tls_files is not None
    env = {
        "IMAP_INTAKE_WORKSPACES_FILE": str(root / "workspaces.yaml"),
        "AIRFLOW_CONN_IMAP_INTAKE_DB": json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port,
                                                   "login": postgres.user, "password": postgres.password, "schema": postgres.database}),
    }
    airflow = AirflowCluster.create(root / "airflow", postgres.create_database(f"airflow_rs_{secrets.token_hex(3)}"), extra_env=env)
    airflow.migrate()
    # In Airflow's metadata database, as a user keeps it: the password is changed there later.
    connection: dict[str, object] = {"conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port, "login": user,
                                     "password": "Revoked-Password-7", "extra": json.dumps({"ca_cert": dovecot.tls_files.ca_pem})}
    airflow.airflow("connections", "add", "imap_runstate", "--conn-json", json.dumps(connection))
    airflow.start()
    try:
        airflow.wait_for_dag(f"imap_intake__{slug}")
        airflow.airflow("dags", "unpause", f"imap_intake__{slug}")
        yield RunState(airflow, f"imap_intake__{slug}", slug, notified, connection, dovecot.password)
    finally:
        airflow.stop()


def _trigger(stack: RunState, conf: dict[str, str] | None = None, timeout: float = 240) -> dict[str, object]:
    run_id = f"manual__rs_{secrets.token_hex(4)}"
    stack.airflow.airflow("dags", "trigger", stack.dag_id, "--run-id", run_id, *(["--conf", json.dumps(conf)] if conf else []))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in stack.airflow.dag_runs(stack.dag_id) if r.get("run_id") == run_id]
        if runs and runs[0].get("state") in {"success", "failed"}:
            return runs[0]
        time.sleep(1)
    raise TimeoutError(f"run {run_id} did not finish: {stack.airflow.dag_runs(stack.dag_id)}")


def _wait_for_calls(path: Path, event: str, count: int, timeout: float = 120) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c in calls(path) if c["event"] == event]
        if len(found) >= count:
            return found
        time.sleep(1)
    raise TimeoutError(f"{count} {event} notification(s) expected, got {calls(path)}")


def _task_logs(stack: RunState, run_id: str) -> str:
    folder = Path(stack.airflow.home) / "logs" / f"dag_id={stack.dag_id}" / f"run_id={run_id}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))


def test_a_failed_poll_fails_the_run_alerts_once_per_run_and_once_when_stale_and_a_fix_imports_what_waited(stack, db, append) -> None:  # type: ignore[no-untyped-def]
    user = str(stack.connection["login"])
    append(user, [(message(sender="buyer@acme.example", to=user, subject="waiting",
                           attachments=[("waiting.pdf", "application/pdf", po_pdf("W-1"))]).as_bytes(), None)])
    first = _trigger(stack)
    assert first["state"] == "failed", first  # not green: the poll could not log in
    polls = db.execute("SELECT status, error, run_id FROM imap_intake.poll WHERE workspace=%s ORDER BY id", (stack.slug,)).fetchall()
    assert [p[0] for p in polls] == ["failed"] and "rejected the login" in polls[0][1] and polls[0][2] == first["run_id"]
    logs = _task_logs(stack, str(first["run_id"]))
    assert "poll_mailbox failed in this run: poll" in logs and "rejected the login" in logs  # the verdict says why
    assert "Revoked-Password-7" not in logs
    # Past stale_after without a successful poll: the next failed run's verdict tells on_stale, once.
    time.sleep(max(0.0, STALE_AFTER_SECONDS + 1 - (time.time() - first_poll_time(db, stack.slug))))
    assert _trigger(stack)["state"] == "failed"
    assert _trigger(stack)["state"] == "failed"
    failed = _wait_for_calls(stack.notified, "failed", 3)
    assert len({c["run_id"] for c in failed}) == 3 and all(c["text"] == f"{stack.dag_id} needs you" for c in failed)
    stale = _wait_for_calls(stack.notified, "stale", 1)
    assert len(stale) == 1 and "is stale" in str(stale[0]["message"])
    assert db.execute("SELECT count(*) FROM imap_intake.alert WHERE workspace=%s AND kind='stale'", (stack.slug,)).fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM imap_intake.attachment WHERE workspace=%s", (stack.slug,)).fetchone()[0] == 0

    # The password fixed: the next run succeeds and imports what waited; its verdict task never started.
    stack.airflow.airflow("connections", "delete", "imap_runstate")
    stack.airflow.airflow("connections", "add", "imap_runstate", "--conn-json",
                          json.dumps({**stack.connection, "password": stack.right_password}))
    fixed = _trigger(stack)
    assert fixed["state"] == "success", fixed
    assert db.execute("SELECT count(*) FROM imap_intake.purchase_order WHERE workspace=%s", (stack.slug,)).fetchone()[0] == 1
    logs = _task_logs(stack, str(fixed["run_id"]))
    assert "batch 1/1" in logs and not [n for n in NOISE if n in logs], [n for n in NOISE if n in logs]
    assert "run_verdict" not in logs  # skipped by the scheduler: no task process, no log

    # A refused window: the run fails with our message and the poll is recorded as failed with it.
    refused = _trigger(stack, {"since": "2026-05-01", "until": "2026-04-01"})
    assert refused["state"] == "failed"
    row = db.execute("SELECT status, mode, error FROM imap_intake.poll WHERE workspace=%s AND run_id=%s",
                     (stack.slug, refused["run_id"])).fetchone()
    assert row[0] == "failed" and row[1] == "backfill" and "backfill window is empty" in row[2] and "swap the two dates" in row[2]
    assert len(_wait_for_calls(stack.notified, "failed", 4)) == 4
    assert len([c for c in calls(stack.notified) if c["event"] == "stale"]) == 1  # a successful poll since: not stale

    # Nothing new since: the triggerer's idle check ends the run, no worker starts a task process.
    idle = _trigger(stack)
    assert idle["state"] == "success", idle
    if not STARTS_IN_TRIGGERER:  # Airflow 3.2: the poll ran on a worker and found nothing (the worker path, as before)
        row = db.execute("SELECT status, fetched FROM imap_intake.poll WHERE workspace=%s AND run_id=%s", (stack.slug, idle["run_id"])).fetchone()
        assert row == ("ok", 0), row
        return
    states = {t["task_id"]: t["state"] for t in json.loads(stack.airflow.airflow(
        "tasks", "states-for-dag-run", stack.dag_id, str(idle["run_id"]), "-o", "json").stdout)}
    assert set(states.values()) == {"skipped"} and "poll_mailbox" in states, states
    folder = Path(stack.airflow.home) / "logs" / f"dag_id={stack.dag_id}" / f"run_id={idle['run_id']}"
    logs = {p.name: p.read_text(errors="replace") for p in folder.rglob("*.log")}
    assert logs and all(".trigger." in name for name in logs), list(logs)  # the triggerer's log only: no worker ran a task
    assert any("the run ends here, without a worker" in text for text in logs.values())
    assert db.execute("SELECT run_id FROM imap_intake.idle_check WHERE workspace=%s", (stack.slug,)).fetchone() == (idle["run_id"],)


def first_poll_time(db, slug: str) -> float:  # type: ignore[no-untyped-def]
    return float(db.execute("SELECT extract(epoch FROM min(started_at)) FROM imap_intake.poll WHERE workspace=%s", (slug,)).fetchone()[0])

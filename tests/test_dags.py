"""The DAG factory: integrity without network or database, and real runs with dag.test().

All dag.test() runs live in this one module: each Python process pays Airflow's start-up once.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
from pathlib import Path

import pytest

from devstack.dovecot import flags
from devstack.samples import demo_mailbox
from imap_intake.config import load_workspaces
from tests.conftest import ROOT


class NoNetwork(Exception):
    pass


def test_dags_folder_imports_without_network_or_database(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise NoNetwork("DAG parsing must not open sockets")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import runpy

    namespace = runpy.run_path(str(ROOT / "dags" / "workspaces.py"))
    dag = namespace["imap_intake__demo"]
    assert dag.max_active_runs == 1 and "imap-intake" in dag.tags and dag.doc_md
    # push: true: new mail (the mailbox asset's IDLE watcher) or the cron time, whichever comes first
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule" and type(dag.timetable.timetable).__name__ == "CronDataIntervalTimetable"
    asset = dag.timetable.asset_condition
    assert asset.uri == "imap-intake://mailbox/imap_demo/INBOX" and asset.watchers[0].trigger.serialize()[1]["imap_conn_id"] == "imap_demo"
    poll = dag.get_task("poll_mailbox")
    assert poll.pool == "imap_intake__imap_demo" and poll.retries == 3 and poll.retry_exponential_backoff
    assert {t.task_id for t in dag.tasks} == {"poll_mailbox", "import_orders", "run_verdict"}
    # import_tasks parallel import slots: one task mapped over the slots (one operator to build, not N)
    assert dag.get_task("import_orders").expand_input.value == {"slot": [1, 2]}
    assert set(dag.params) == {"since", "until"}  # the trigger form's backfill dates
    assert [a.uri for a in dag.get_task("import_orders").outlets] == ["imap-intake://demo/purchase-orders"]
    # A task lost with its worker (SIGKILL, a node gone) is failed by the scheduler's heartbeat check:
    # only a retry saves the run. Every working task retries (make scale found one without).
    assert all(t.retries >= 1 for t in dag.tasks if t.task_id != "run_verdict"), {t.task_id: t.retries for t in dag.tasks}
    # The verdict: the last task, started only when a task failed, and then failing the run (no retry).
    verdict = dag.get_task("run_verdict")
    assert verdict.trigger_rule == "one_failed" and verdict.retries == 0 and not verdict.downstream_task_ids
    assert verdict.upstream_task_ids == {"poll_mailbox", "import_orders"}
    # The imports run after a poll that succeeded or failed, and are skipped with it when the idle check skipped it.
    assert dag.get_task("import_orders").trigger_rule == "one_done"
    # The poll starts in the triggerer with the idle check; a run with nothing to do never reaches a worker.
    assert poll.start_from_trigger and poll.start_trigger_args.trigger_cls == "imap_intake.triggers.idle_check.IdleCheckTrigger"
    assert poll.start_trigger_args.next_method == "execute_after_check"


def test_a_thousand_workspaces_build_a_thousand_dags() -> None:
    from imap_intake.workspace_dags import build_dags

    text = "workspaces:\n" + "".join(
        f"  - {{slug: w{i}, imap_conn_id: imap_{i % 7}, start_date: 2026-01-01, storage_base: 'file:///x'}}\n" for i in range(1000)
    )
    dags = build_dags(load_workspaces(text, source="t", env={}))
    assert len(dags) == 1000 and len({d.get_task("poll_mailbox").pool for d in dags.values()}) == 7


def test_an_idle_poll_skips_every_import_slot_and_the_verdict() -> None:
    """SkipMixin.skip would name only map index -1, which a task mapped over a literal list never has:
    its slots are created with the run. The poll names each slot (dag.test below runs it for real)."""
    from airflow.sdk.bases.skipmixin import XCOM_SKIPMIXIN_KEY
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    from imap_intake.workspace_dags import build_dags

    text = "workspaces:\n  - {slug: w, imap_conn_id: imap, start_date: 2026-01-01, storage_base: 'file:///x', import_tasks: 3}\n"
    poll = build_dags(load_workspaces(text, source="t", env={}))["imap_intake__w"].get_task("poll_mailbox")
    pushed: dict[str, object] = {}

    class TaskInstance:  # the one call the poll makes on its task instance here
        def xcom_push(self, key: str, value: object) -> None:
            pushed[key] = value

    with pytest.raises(DownstreamTasksSkipped) as skipped:
        poll._skip_downstream({"ti": TaskInstance()})
    assert sorted(skipped.value.tasks, key=str) == sorted(
        ["import_orders", ("import_orders", 0), ("import_orders", 1), ("import_orders", 2), "run_verdict"], key=str)
    assert sorted(pushed[XCOM_SKIPMIXIN_KEY]["skipped"]) == ["import_orders", "run_verdict"]  # type: ignore[index]


def test_the_trigger_form_offers_backfill_dates_that_airflow_validates() -> None:
    import attrs
    from airflow.sdk.definitions.param import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    from imap_intake.workspace_dags import build_dags

    dags = build_dags(load_workspaces("workspaces:\n  - {slug: a, imap_conn_id: imap_a, start_date: 2026-01-01, storage_base: 'file:///x'}\n", source="t", env={}))
    assert not attrs.validators.get_disabled()  # switched off only while the params are attached
    served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dags["imap_intake__a"]))
    schema = served.params.get_param("since").schema
    assert schema["format"] == "date" and "null" in schema["type"]
    assert served.params.validate() == {"since": None, "until": None}  # an ordinary run
    # What Airflow checks when a run is created with the form's (or the API's) conf:
    assert served.params.deep_merge({"since": "2026-03-01", "until": "2026-04-01"}).validate()["since"] == "2026-03-01"
    with pytest.raises((ParamValidationError, ValueError), match="since"):  # Airflow 3.2's served params raise ValueError
        served.params.deep_merge({"since": "2026-13-01"}).validate()


def test_a_window_needs_a_start_and_reaches_now_without_an_end() -> None:
    import datetime as dt

    from imap_intake.exceptions import ConfigError
    from imap_intake.service.run import parse_window

    now = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    assert parse_window(None, "", now=now) is None
    window = parse_window("2026-04-01", None, now=now)
    assert window is not None and (window.since, window.until) == (dt.datetime(2026, 4, 1, tzinfo=dt.UTC), now)
    with pytest.raises(ConfigError, match="needs 'since'"):
        parse_window("", "2026-04-01", now=now)
    with pytest.raises(ConfigError, match="is not before until .2026-05-01 .the last day re-checked.*swap the two dates"):
        parse_window("2026-06-01", "2026-05-01", now=now)
    # "until" as a date is the last day re-checked: one day is since == until.
    day = parse_window("2026-04-01", "2026-04-01", now=now)
    assert day is not None and (day.since, day.until) == (dt.datetime(2026, 4, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    # as a date-time (an Airflow data interval, the API) it is exclusive
    exact = parse_window("2026-04-01T06:00:00+00:00", dt.datetime(2026, 4, 1, 6, 15, tzinfo=dt.UTC), now=now)
    assert exact is not None and exact.until == dt.datetime(2026, 4, 1, 6, 15, tzinfo=dt.UTC)
    with pytest.raises(ConfigError, match="is not before until"):
        parse_window("2026-04-01T06:00:00", "2026-04-01T06:00:00", now=now)


def test_permanent_errors_fail_fast_and_transient_ones_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from imap_intake.exceptions import AuthenticationFailed, MailboxUnreachable
    from imap_intake.operators.intake import _no_retry_for_permanent

    def raise_(exc: Exception):  # type: ignore[no-untyped-def]
        def call() -> None:
            raise exc
        return call

    with pytest.raises(AirflowFailException, match="not retried"):
        _no_retry_for_permanent(raise_(AuthenticationFailed("bad password")))
    with pytest.raises(MailboxUnreachable):
        _no_retry_for_permanent(raise_(MailboxUnreachable("reset")))


# -- real runs ------------------------------------------------------------------------------------


CONSUMER = """
# An Airflow DAG a user writes: it runs when the workspace's orders asset is updated.
import os
from pathlib import Path
from airflow.sdk import DAG, task
from imap_intake.workspace_dags import orders_asset

with DAG("orders_consumer", schedule=[orders_asset("dagtest")]) as consumer_dag:
    @task
    def consume():
        Path(os.environ["CONSUMER_MARK"]).write_text("ran")
    consume()
"""


@pytest.fixture(scope="module")
def dag_folder(tmp_path_factory: pytest.TempPathFactory, airflow_db: None) -> Path:
    """A dags folder with our factory file and a consumer DAG; dag.test() loads DAGs from there."""
    folder = tmp_path_factory.mktemp("dags")
    (folder / "workspaces.py").write_text((ROOT / "dags" / "workspaces.py").read_text())
    (folder / "consumer.py").write_text(CONSUMER)
    saved = {k: os.environ.get(k) for k in ("AIRFLOW__CORE__DAGS_FOLDER", "IMAP_INTAKE_WORKSPACES_FILE", "CONSUMER_MARK")}
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    os.environ["IMAP_INTAKE_WORKSPACES_FILE"] = str(folder / "workspaces.yaml")
    os.environ["CONSUMER_MARK"] = str(folder / "consumer-ran")
    import airflow.settings

    saved_folder, airflow.settings.DAGS_FOLDER = airflow.settings.DAGS_FOLDER, str(folder)  # read once at import
    yield folder
    airflow.settings.DAGS_FOLDER = saved_folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.integration
@pytest.mark.airflow
def test_dag_test_imports_the_mailbox_and_feeds_an_asset_scheduled_dag(dag_folder, dovecot, postgres, mail_user, append, db, monkeypatch, capfd, caplog) -> None:  # type: ignore[no-untyped-def]
    import runpy

    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    append(mail_user, demo_mailbox(mail_user))
    before = flags(dovecot, mail_user)
    from imap_intake.service import extractor

    helpers: list[int] = []  # the poll task reads through a helper process, as a large sync does
    monkeypatch.setattr(extractor, "HELPER_FROM_MESSAGES", 1)
    monkeypatch.setattr(extractor.HelperProcess, "submit", lambda self, group, real=extractor.HelperProcess.submit: (
        helpers.append(len(group.metas)), real(self, group))[1])
    (dag_folder / "workspaces.yaml").write_text(textwrap.dedent(f"""
        workspaces:
          - slug: dagtest
            imap_conn_id: imap_dagtest
            start_date: 2026-01-01
            storage_base: file://{dag_folder}/storage
            supplier_rules: [{{match: nordwind-logistik.example, supplier: Nordwind}}]
            default_supplier: Others
            pool: default_pool
    """))
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_DAGTEST", json.dumps({
        "conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port, "login": mail_user,
        "password": dovecot.password, "extra": {"ca_cert": dovecot.tls_files.ca_pem, "validate_certificate": True}}))
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_INTAKE_DB", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port, "login": postgres.user,
        "password": postgres.password, "schema": postgres.database}))
    dag = runpy.run_path(str(dag_folder / "workspaces.py"))["imap_intake__dagtest"]
    consumer_module = runpy.run_path(str(dag_folder / "consumer.py"))
    consumer = next(v for v in consumer_module.values() if getattr(v, "dag_id", None) == "orders_consumer")
    assert str(consumer.test().state).endswith("success")  # serialises the consumer; runs once by hand
    (dag_folder / "consumer-ran").unlink()
    from airflow.models.dag import DagModel

    with create_session() as session:  # the user toggles the consumer on
        session.query(DagModel).filter(DagModel.dag_id == "orders_consumer").update({"is_paused": False})

    capfd.readouterr()
    run = dag.test()
    assert str(run.state).endswith("success")
    out = capfd.readouterr()
    logs = out.out + out.err + caplog.text
    assert "batch 1/" in logs  # the task logs were captured ...
    assert dovecot.password not in logs  # ... and the password is not in them
    counts = dict(db.execute("SELECT outcome, count(*) FROM imap_intake.message WHERE workspace='dagtest' GROUP BY 1").fetchall())
    assert counts == {"imported": 6, "no_supported_attachment": 2}
    assert sum(helpers) > 0, helpers
    assert db.execute("SELECT count(*) FROM imap_intake.purchase_order WHERE workspace='dagtest'").fetchone()[0] == 6
    assert flags(dovecot, mail_user) == before
    from airflow.models.xcom import XComModel

    poll_id = db.execute("SELECT max(id) FROM imap_intake.poll WHERE workspace='dagtest'").fetchone()[0]
    with create_session() as session:  # the tasks' "Mail intake" extra links, as the UI reads them
        links = dict(session.query(XComModel.task_id, XComModel.value).filter(
            XComModel.run_id == run.run_id, XComModel.key == "_link_IntakeStatusLink").all())
    assert links["poll_mailbox"] == f"/imap-intake/workspaces/dagtest/polls/{poll_id}"
    assert links["import_orders"] == "/imap-intake/workspaces/dagtest"
    slots = sorted((ti.map_index, str(ti.state)) for ti in run.get_task_instances() if ti.task_id == "import_orders")
    # Both slots ran; one after the other here, so the first took every order and the second found none (skipped: no empty event).
    assert [i for i, _ in slots] == [0, 1] and sorted(s.rsplit(".", 1)[-1] for _, s in slots) == ["skipped", "success"], slots

    def events() -> list:  # type: ignore[type-arg]
        with create_session() as session:
            return [e.extra for e in session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                    .filter(AssetModel.uri == "imap-intake://dagtest/purchase-orders")]

    succeeded = [i + 1 for i, state in slots if state.endswith("success")]  # the slot that took the orders sent the event
    assert [(e["imported"], e["slot"]) for e in events()] == [(6, succeeded[0])]
    with create_session() as session:  # what the scheduler turns into a run of the consumer
        assert session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == "orders_consumer").count() == 1
    assert str(consumer.test().state).endswith("success")
    assert (dag_folder / "consumer-ran").read_text() == "ran"

    second = dag.test()  # nothing new: no double import, no second asset event
    assert str(second.state).endswith("success")
    # ... and no import task process either: the poll found nothing to import and skipped them.
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in second.get_task_instances()}
    assert states[("poll_mailbox", -1)].endswith("success"), states
    assert {t for t, _ in states} == {"poll_mailbox", "import_orders", "run_verdict"}, states
    assert all(s.endswith("skipped") for (t, _), s in states.items() if t != "poll_mailbox"), states
    assert db.execute("SELECT count(*) FROM imap_intake.attachment WHERE workspace='dagtest'").fetchone()[0] == 6
    assert len(events()) == 1

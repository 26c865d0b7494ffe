"""The DAG factory: one DAG per workspace. Parses without network or database access."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param
from airflow.sdk.definitions.param import ParamsDict

from imap_intake.config import Workspace
from imap_intake.operators.intake import ImportOrdersOperator, PollMailboxOperator, RunVerdictOperator

IMPORT_TASK_ID = "import_orders"
VERDICT_TASK_ID = "run_verdict"
DEFAULT_ARGS = {
    "owner": "imap-intake",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
}


def orders_asset(slug: str) -> Asset:
    """The asset a workspace updates when orders arrive: ``schedule=[orders_asset("acme")]``."""
    return Asset(name=f"imap_intake__{slug}__purchase_orders", uri=f"imap-intake://{slug}/purchase-orders")


def new_mail_asset(imap_conn_id: str, folder: str | None, postgres_conn_id: str = "") -> Asset:
    """New mail in a connection's folder, watched by the triggerer with IMAP IDLE (push workspaces).
    Workspaces on the same connection and folder share this asset, its one trigger and its session;
    ``postgres_conn_id`` (their ledger) lets a starting watch report the mail their polls have not reached."""
    from airflow.sdk import AssetWatcher

    from imap_intake.triggers.new_mail import NewMailTrigger

    where = folder or ""
    label = f"{imap_conn_id}__{where or 'default'}"
    return Asset(
        name=f"imap_intake__new_mail__{label}",
        uri=f"imap-intake://mailbox/{quote(imap_conn_id, safe='')}/{quote(where or '~', safe='')}",
        watchers=[AssetWatcher(name=f"imap_intake__idle__{label}", trigger=NewMailTrigger(imap_conn_id=imap_conn_id, folder=where,
                                                                                          postgres_conn_id=postgres_conn_id))],
    )


def _schedule(workspace: Workspace) -> Any:
    """The cron timetable; for a push workspace, new mail or the cron time, whichever comes first
    (the cron run stays the safety net when a session is down)."""
    cron = CronDataIntervalTimetable(workspace.schedule, timezone="UTC")
    if not workspace.push:
        return cron
    from airflow.sdk import AssetOrTimeSchedule

    return AssetOrTimeSchedule(timetable=cron, assets=new_mail_asset(workspace.imap_conn_id, workspace.folder, workspace.postgres_conn_id))


def window_params() -> dict[str, Param]:
    """The trigger form's two date fields. Empty for an ordinary poll; a date range backfills it."""
    def day(title: str, description: str) -> Param:
        return Param(None, type=["null", "string"], format="date", title=title, description=description)

    return {
        "since": day("Backfill since", "First day to re-check (inclusive). Leave both dates empty for an ordinary poll. "
                     "Not for the Backfill dialog: there, use its own From/To dates and leave these empty."),
        "until": day("Backfill through", "Last day to re-check (inclusive); empty means up to now."),
    }


@functools.cache
def _window_params_are_valid() -> bool:
    ParamsDict(window_params()).validate()  # raises if the shared definition is ever broken
    return True


def _attach_window_params(dag: DAG) -> None:
    """Give the DAG its trigger-form params. They are attached after the tasks (each operator would
    otherwise deep-copy them, twice) and their defaults are validated once per process, not per DAG:
    Airflow validates DAG params against their JSON schema on every assignment, which tripled the
    time to build 1,000 workspace DAGs. Every DAG gets the same definition, so one check covers all."""
    _window_params_are_valid()
    with attrs.validators.disabled():
        dag.params = window_params()  # type: ignore[assignment]


def _doc(workspace: Workspace) -> str:
    return (
        f"### imap-intake: {workspace.slug}\n\n{workspace.description}\n\n"
        f"Polls connection `{workspace.imap_conn_id}` (folder `{workspace.folder or 'from the connection'}`) "
        f"read-only and records every message once in `{workspace.postgres_conn_id}`; imports orders "
        f"and updates the asset `imap-intake://{workspace.slug}/purchase-orders`. A run whose poll or imports "
        "failed ends *failed* (the `run_verdict` task says why); the imports still take what is stored.\n\n"
        "**Re-check a past window** - two ways, do not mix them:\n\n"
        "* *Trigger* with **Backfill since** / **Backfill through** (inclusive days): one run reads the whole window.\n"
        "* *Backfill* (or `airflow backfill create`): use the dialog's **From/To** and leave *Backfill since/through* "
        "empty; set **Max Active Runs** to 96 or more, 192 measured fastest (the dialog's default 1 runs a month of 15-minute intervals one at a time; "
        "the runs after the first find their window already scanned and end in the triggerer, without a worker).\n\n"
        "Outcomes, polls and orders: *Browse > Mail intake*."
    )


def _failure_notifiers(workspace: Workspace) -> list[Any] | None:
    """The workspace's ``alerts.on_failure`` notifiers: Airflow calls them once per failed run."""
    if not workspace.alerts.on_failure:
        return None
    from imap_intake.notifiers import build_notifiers

    return build_notifiers(workspace.alerts.on_failure, where=f"workspace '{workspace.slug}': alerts.on_failure")


def configured_dag_arguments() -> dict[str, Any]:
    """The DAG arguments Airflow reads from its configuration for every DAG it builds; read once for
    all workspaces here (two configuration lookups per DAG were ~12 % of building 1,000), same values."""
    from airflow.sdk.configuration import conf

    return {
        "max_consecutive_failed_dag_runs": conf.getint("core", "max_consecutive_failed_dag_runs_per_dag"),
        "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning"),
    }


def build_dag(workspace: Workspace, *, workspaces_file: str | None = None, configured: dict[str, Any] | None = None) -> DAG:
    start = dt.datetime.combine(workspace.start_date, dt.time(), tzinfo=dt.UTC)
    with DAG(
        dag_id=workspace.dag_id,
        schedule=_schedule(workspace),
        start_date=start,
        catchup=False,
        max_active_runs=1,
        max_active_tasks=workspace.import_tasks + 2,
        tags=["imap-intake", workspace.slug, *workspace.tags],
        doc_md=_doc(workspace),
        default_args=DEFAULT_ARGS,
        on_failure_callback=_failure_notifiers(workspace),
        **(configured if configured is not None else configured_dag_arguments()),
    ) as dag:
        poll = PollMailboxOperator(
            task_id="poll_mailbox", workspace=workspace.slug, workspaces_file=workspaces_file,
            # A manual run with conf {"since": ..., "until": ...} (the trigger form's dates) backfills that window.
            since="{{ dag_run.conf.get('since') or '' }}", until="{{ dag_run.conf.get('until') or '' }}",
            pool=workspace.pool, start_in_triggerer=workspace.start_in_triggerer,
        )
        # One mapped task, expanded to `import_tasks` parallel slots when the run is created (each claims
        # pending attachments with SKIP LOCKED): building it costs one operator whatever the number of slots.
        # A slot that imported orders updates the orders asset; the import slots run whatever the poll did.
        imports = ImportOrdersOperator.partial(
            # one_done: after a poll that succeeded or failed (what is stored is imported either way); skipped
            # by the scheduler, without a task process, when the poll was skipped (an idle run).
            task_id=IMPORT_TASK_ID, workspace=workspace.slug, workspaces_file=workspaces_file, trigger_rule="one_done",
            outlets=[orders_asset(workspace.slug)],
        ).expand(slot=list(range(1, workspace.import_tasks + 1)))
        # The run's last task: started only when a task failed, and then fails the run (a failed poll
        # is a failed run, not a green one because the imports after it succeeded).
        verdict = RunVerdictOperator(task_id=VERDICT_TASK_ID, workspace=workspace.slug, workspaces_file=workspaces_file)
        poll >> imports >> verdict  # type: ignore[operator]
        poll >> verdict  # type: ignore[operator]
    _attach_window_params(dag)
    return dag


def build_dags(workspaces: Iterable[Workspace], *, workspaces_file: str | Path | None = None) -> dict[str, DAG]:
    """All workspaces' DAGs. The cyclic garbage collector is held off while they are built: DAG and
    operator objects are long-lived and reference each other, so collections during the build only
    scan what must stay (measured: most of the build time for 1,000 workspaces)."""
    import gc

    path = str(workspaces_file) if workspaces_file else None
    enabled = gc.isenabled()
    gc.disable()
    try:
        configured = configured_dag_arguments()
        return {w.dag_id: build_dag(w, workspaces_file=path, configured=configured) for w in workspaces}
    finally:
        if enabled:
            gc.enable()


def dags_from(path: str | Path | None = None) -> dict[str, DAG]:
    """Every workspace's DAG from a workspaces file: ``path``, unless $IMAP_INTAKE_WORKSPACES_FILE is set
    (it wins, so one image serves several deployments); neither: $AIRFLOW_HOME/include/workspaces.yaml.
    A DAG file of your own needs two lines::

        from imap_intake.workspace_dags import dags_from
        globals().update(dags_from("/usr/local/airflow/include/workspaces.yaml"))
    """
    from imap_intake.workspaces import read_workspaces, workspaces_file

    file = workspaces_file(path)
    return build_dags(read_workspaces(file), workspaces_file=file)

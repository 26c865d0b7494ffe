from __future__ import annotations

import datetime as dt

import pytest

from imap_intake.config import load_workspaces
from imap_intake.exceptions import ConfigError

ENV = {"IMAP_INTAKE_STORAGE_BASE": "file:///srv/po"}


def load(text: str) -> tuple:  # type: ignore[type-arg]
    return load_workspaces(text, source="ws.yaml", env=ENV)


def test_minimal_workspace_gets_defaults() -> None:
    (ws,) = load("workspaces:\n  - {slug: acme, imap_conn_id: imap_acme, start_date: 2026-02-01}\n")
    assert ws.dag_id == "imap_intake__acme" and ws.start_date == dt.date(2026, 2, 1)
    assert ws.accepted_types == {"pdf", "csv", "xlsx", "xml"} and ws.postgres_conn_id == "imap_intake_db"
    assert ws.pool == "imap_intake__imap_acme" and ws.storage_base == "file:///srv/po"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- {slug: Bad Slug, imap_conn_id: x, start_date: 2026-01-01}", "slug must be lower-case"),
        ("- {slug: a, start_date: 2026-01-01}", "imap_conn_id is required"),
        ("- {slug: a, imap_conn_id: x}", "start_date is required"),
        ("- {slug: a, imap_conn_id: x, start_date: yesterday}", "not a date; write it as YYYY-MM-DD"),
        ("- {slug: a, imap_conn_id: x, start_date: 2026-01-01, accepted_types: [docx]}", "accepted_types must be"),
        ("- {slug: a, imap_conn_id: x, start_date: 2026-01-01, max_attachment_mb: -1}", "max_attachment_mb must be a number"),
        ("- {slug: a, imap_conn_id: x, start_date: 2026-01-01, colour: red}", "unknown field(s) colour"),
        ("- {slug: a, imap_conn_id: x, start_date: 2026-01-01, supplier_rules: [{match: a.example}]}", "supplier_rules[0] needs"),
        ("- {slug: a, imap_conn_id: x, start_date: 2026-01-01, storage_base: '${NOPE}/x'}", "${NOPE}"),
        ("- {slug: a, imap_conn_id: x, start_date: 2026-01-01}\n  - {slug: a, imap_conn_id: y, start_date: 2026-01-01}", "appears twice"),
    ],
)
def test_errors_name_the_field_and_the_fix(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load("workspaces:\n  " + body + "\n")
    assert message in str(info.value) and "ws.yaml" in str(info.value)


def test_missing_storage_base_says_where_to_set_it() -> None:
    with pytest.raises(ConfigError, match="IMAP_INTAKE_STORAGE_BASE"):
        load_workspaces("workspaces:\n  - {slug: a, imap_conn_id: x, start_date: 2026-01-01}\n", source="f", env={})


def test_not_yaml() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load("workspaces: [\n")


def test_the_shipped_workspaces_file_is_valid() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "include" / "workspaces.yaml").read_text()
    (demo,) = load(text)
    assert demo.slug == "demo" and demo.imap_conn_id == "imap_demo"


def test_alerts_name_notifiers_and_a_stale_limit() -> None:
    (ws,) = load(
        "workspaces:\n  - slug: a\n    imap_conn_id: x\n    start_date: 2026-01-01\n    alerts:\n"
        "      on_failure:\n        - {notifier: airflow.providers.smtp.notifications.smtp.SmtpNotifier, to: ops@example.com}\n"
        "      stale_after: 2h\n"
    )
    assert ws.alerts.stale_after == dt.timedelta(hours=2)
    (spec,) = ws.alerts.on_failure
    assert spec.path.endswith(".SmtpNotifier") and dict(spec.args) == {"to": "ops@example.com"}
    assert ws.alerts.on_stale == ws.alerts.on_failure  # on_stale defaults to the failure notifiers
    (quiet,) = load("workspaces:\n  - {slug: b, imap_conn_id: x, start_date: 2026-01-01}\n")
    assert quiet.alerts.on_failure == () and quiet.alerts.stale_after is None


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ("{stale_after: 2h}", "needs someone to tell"),
        ("{on_failure: [{to: x}]}", "alerts.on_failure[0] needs 'notifier'"),
        ("{on_failure: [{notifier: x.Y}], stale_after: soon}", "'soon' is not a duration"),
        ("{on_failure: [{notifier: x.Y}], stale_after: 0m}", "is not a duration"),
        ("{on_fail: [{notifier: x.Y}]}", "unknown field(s) on_fail"),
        ("[]", "alerts must be a mapping"),
    ],
)
def test_alert_errors_name_the_field(alerts: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(f"workspaces:\n  - {{slug: a, imap_conn_id: x, start_date: 2026-01-01, alerts: {alerts}}}\n")
    assert message in str(info.value) and "workspace 'a'" in str(info.value)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), (45, 2700), ("1.5h", 5400)])
def test_durations(text: object, seconds: int) -> None:
    from imap_intake.config import parse_duration

    assert parse_duration(text, "w").total_seconds() == seconds


def test_an_object_store_takes_its_connection_from_the_workspace_or_the_environment() -> None:
    text = "workspaces:\n  - {slug: a, imap_conn_id: x, start_date: 2026-01-01, storage_base: 's3://po/a'%s}\n"
    env = {"IMAP_INTAKE_STORAGE_CONN_ID": "aws_default_po"}
    (own,) = load_workspaces(text % ", storage_conn_id: aws_po", source="f", env=env)
    (fallback,) = load_workspaces(text % "", source="f", env=env)
    (none,) = load_workspaces(text % "", source="f", env={})
    assert (own.storage_conn_id, fallback.storage_conn_id, none.storage_conn_id) == ("aws_po", "aws_default_po", None)
    (disk,) = load_workspaces("workspaces:\n  - {slug: a, imap_conn_id: x, start_date: 2026-01-01}\n", source="f", env={**ENV, **env})
    assert disk.storage_conn_id is None  # the environment's object-store connection is not a file base's


def test_a_file_base_with_a_storage_connection_says_to_remove_it() -> None:
    with pytest.raises(ConfigError, match="needs none; remove it"):
        load("workspaces:\n  - {slug: a, imap_conn_id: x, start_date: 2026-01-01, storage_conn_id: aws_po}\n")

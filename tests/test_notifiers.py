"""Notifiers named in the workspaces file are built with the DAG, or refused with what to fix."""

from __future__ import annotations

import pytest

from imap_intake.config import NotifierSpec
from imap_intake.exceptions import ConfigError
from imap_intake.notifiers import build_notifiers, notify_all


def test_a_notifier_is_built_with_its_arguments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (built,) = build_notifiers([NotifierSpec("tests.notifications.RecordingNotifier", {"path": str(tmp_path / "n")})], where="w")
    assert type(built).__name__ == "RecordingNotifier" and built.path == str(tmp_path / "n")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (NotifierSpec("airflow.providers.nowhere.Notifier"), "cannot be imported"),
        (NotifierSpec("tests.notifications.calls"), "is not an Airflow notifier"),
        (NotifierSpec("tests.notifications.RecordingNotifier", {"colour": "red"}), "does not take these arguments"),
    ],
)
def test_a_notifier_that_cannot_be_built_is_named(spec: NotifierSpec, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_notifiers([spec], where="workspace 'a': alerts.on_failure")
    assert message in str(info.value) and "workspace 'a': alerts.on_failure[0]" in str(info.value)


def test_one_broken_notifier_does_not_silence_the_others(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.notifications import calls

    class Broken:
        def __call__(self, context: object) -> None:
            raise RuntimeError("webhook gone")

    (recording,) = build_notifiers([NotifierSpec("tests.notifications.RecordingNotifier", {"path": str(tmp_path / "n"), "text": "t"})],
                                   where="w")
    assert notify_all([Broken(), recording], {"imap_intake": {"event": "stale", "message": "m"}}) == 1
    assert [c["event"] for c in calls(tmp_path / "n")] == ["stale"]

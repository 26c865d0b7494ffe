"""Airflow notifiers named in the workspaces file (``alerts.on_failure``, ``alerts.on_stale``).

Any ``BaseNotifier`` works - the SMTP provider's ``SmtpNotifier``, the Slack provider's
``SlackNotifier`` or ``SlackWebhookNotifier``, one of your own. They are built when the DAG is
built (a constructor stores its arguments; nothing is sent or connected then); a notifier that
cannot be imported or built is a configuration error naming the workspace and the notifier.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from imap_intake.config import NotifierSpec
from imap_intake.exceptions import ConfigError

log = logging.getLogger(__name__)


def build_notifiers(specs: Sequence[NotifierSpec], *, where: str) -> list[Any]:
    """One notifier per spec, or a ``ConfigError`` that says which one and what to do."""
    from airflow.sdk import BaseNotifier

    built = []
    for i, spec in enumerate(specs):
        module, _, name = spec.path.rpartition(".")
        try:
            notifier_class = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"{where}[{i}]: notifier {spec.path} cannot be imported ({exc}); install the provider that ships it "
                "(e.g. apache-airflow-providers-slack or -smtp) or fix the dotted path"
            ) from exc
        if not (isinstance(notifier_class, type) and issubclass(notifier_class, BaseNotifier)):
            raise ConfigError(f"{where}[{i}]: {spec.path} is not an Airflow notifier (a subclass of airflow.sdk.BaseNotifier)")
        try:
            built.append(notifier_class(**dict(spec.args)))
        except TypeError as exc:
            raise ConfigError(f"{where}[{i}]: {spec.path} does not take these arguments ({exc}); see its documentation") from exc
    return built


def notify_all(notifiers: Sequence[Any], context: Mapping[str, Any]) -> int:
    """Call every notifier; one that fails is logged and does not keep the others from being told.
    Returns how many failed."""
    failed = 0
    for notifier in notifiers:
        try:
            notifier(context)
        except Exception as exc:  # noqa: BLE001 - a broken Slack webhook must not hide the run's verdict
            failed += 1
            log.error("notifier %s failed: %s: %s", type(notifier).__name__, type(exc).__name__, exc)
    return failed

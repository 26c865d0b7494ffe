"""Workspaces: who polls which mailbox, how often, and where orders go. Validated, frozen.

Pure: ``load_workspaces(text, source=..., env=...)`` takes the YAML text and the environment
as values; every error names the workspace, the field and the fix.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from imap_intake.exceptions import ConfigError

DEFAULT_TYPES = ("pdf", "csv", "xlsx", "xml")
KNOWN_TYPES = (*DEFAULT_TYPES, "edi")  # edi (X12 850, EDIFACT ORDERS): add it to a workspace's accepted_types
SLUG = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
KNOWN_FIELDS = {
    "slug", "imap_conn_id", "folder", "schedule", "start_date", "default_supplier", "supplier_rules",
    "recipients", "accepted_types", "max_attachment_mb", "max_message_mb", "postgres_conn_id",
    "storage_base", "storage_conn_id", "pool", "batch_size", "import_tasks", "max_import_attempts", "importer", "tags",
    "description", "push", "alerts", "start_in_triggerer",
}
WORKSPACES_FILE_VARIABLE = "IMAP_INTAKE_WORKSPACES_FILE"
STORAGE_VARIABLE = "IMAP_INTAKE_STORAGE_BASE"
STORAGE_CONN_VARIABLE = "IMAP_INTAKE_STORAGE_CONN_ID"


@dataclass(frozen=True)
class SupplierRule:
    """``match`` is an address (buyer@acme.example) or a domain (acme.example, also its subdomains)."""

    match: str
    supplier: str

    def matches(self, sender: str) -> bool:
        sender = sender.lower()
        if "@" in self.match:
            return sender == self.match
        domain = sender.rpartition("@")[2]
        return domain == self.match or domain.endswith("." + self.match)


@dataclass(frozen=True)
class NotifierSpec:
    """An Airflow notifier named in the workspaces file: the dotted path of its class (any
    ``BaseNotifier``) and the keyword arguments it is built with. Built by the DAG factory, not here."""

    path: str
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Alerts:
    """Who hears about trouble: notifiers for a failed run, and for a workspace whose last
    successful poll is older than ``stale_after`` (``on_stale`` defaults to ``on_failure``)."""

    on_failure: tuple[NotifierSpec, ...] = ()
    on_stale: tuple[NotifierSpec, ...] = ()
    stale_after: dt.timedelta | None = None


@dataclass(frozen=True)
class Workspace:
    slug: str
    imap_conn_id: str
    start_date: dt.date
    storage_base: str
    folder: str | None = None
    schedule: str = "*/15 * * * *"
    default_supplier: str | None = None
    supplier_rules: tuple[SupplierRule, ...] = ()
    recipients: tuple[str, ...] = ()
    accepted_types: frozenset[str] = frozenset(DEFAULT_TYPES)
    max_attachment_mb: float = 25
    max_message_mb: float = 60
    postgres_conn_id: str = "imap_intake_db"
    pool: str = ""
    batch_size: int = 50
    import_tasks: int = 2
    max_import_attempts: int = 3
    importer: str | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    push: bool = False
    storage_conn_id: str | None = None  # the object store's Airflow connection (s3://: type aws); None: its default
    alerts: Alerts = Alerts()
    start_in_triggerer: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def dag_id(self) -> str:
        return f"imap_intake__{self.slug}"

    @property
    def max_attachment_bytes(self) -> int:
        return int(self.max_attachment_mb * 1024 * 1024)

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * 1024 * 1024)


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise _fail(where, f"start_date {value!r} is not a date; write it as YYYY-MM-DD") from exc


def _number(item: Mapping[str, Any], name: str, default: float, where: str, *, minimum: float) -> float:
    value = item.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise _fail(where, f"{name} must be a number >= {minimum}, not {value!r}")
    return value


def _rules(value: Any, where: str) -> tuple[SupplierRule, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        value = [{"match": k, "supplier": v} for k, v in value.items()]
    if not isinstance(value, list):
        raise _fail(where, "supplier_rules must be a list of {match: address-or-domain, supplier: NAME}")
    rules = []
    for i, rule in enumerate(value):
        if not isinstance(rule, Mapping) or not rule.get("match") or not rule.get("supplier"):
            raise _fail(where, f"supplier_rules[{i}] needs 'match' (address or domain) and 'supplier'")
        rules.append(SupplierRule(str(rule["match"]).strip().lower().lstrip("@*."), str(rule["supplier"])))
    return tuple(rules)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NOTIFIER_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


def parse_duration(value: Any, where: str) -> dt.timedelta:
    """``90s``, ``30m``, ``2h``, ``1d`` (a bare number is minutes)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return dt.timedelta(minutes=value)
    match = _DURATION.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise _fail(where, f"{value!r} is not a duration: write e.g. 30m, 2h or 1d")
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _flag(item: Mapping[str, Any], name: str, default: bool, where: str, meaning: str) -> bool:
    value = item.get(name, default)
    if not isinstance(value, bool):
        raise _fail(where, f"{name} must be true or false: {meaning}")
    return value


def _notifiers(value: Any, where: str) -> tuple[NotifierSpec, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise _fail(where, "must be a list of notifiers, each {notifier: dotted.path.ToClass, <its arguments>...}")
    specs = []
    for i, item in enumerate(value):
        path = str(item.get("notifier") or "") if isinstance(item, Mapping) else ""
        if not _NOTIFIER_PATH.match(path):
            raise ConfigError(f"{where}[{i}] needs 'notifier': the dotted path of an Airflow notifier class, e.g. "
                              "airflow.providers.slack.notifications.slack.SlackNotifier")
        specs.append(NotifierSpec(path, {str(k): v for k, v in item.items() if k != "notifier"}))
    return tuple(specs)


def _alerts(value: Any, where: str) -> Alerts:
    if value is None:
        return Alerts()
    if not isinstance(value, Mapping):
        raise _fail(where, "alerts must be a mapping with on_failure, on_stale and stale_after")
    unknown = sorted(set(value) - {"on_failure", "on_stale", "stale_after"})
    if unknown:
        raise _fail(where, f"alerts: unknown field(s) {', '.join(map(str, unknown))}; known: on_failure, on_stale, stale_after")
    on_failure = _notifiers(value.get("on_failure"), f"{where}: alerts.on_failure")
    on_stale = _notifiers(value.get("on_stale"), f"{where}: alerts.on_stale") or on_failure
    stale_after = parse_duration(value["stale_after"], f"{where}: alerts.stale_after") if value.get("stale_after") is not None else None
    if stale_after is not None and not on_stale:
        raise _fail(where, "alerts.stale_after needs someone to tell: add notifiers under alerts.on_stale (or on_failure)")
    return Alerts(on_failure=on_failure, on_stale=on_stale if stale_after is not None else (), stale_after=stale_after)


def _expand(value: str, env: Mapping[str, str], where: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise _fail(where, f"storage_base uses ${{{name}}}, which is not set in the environment")
        return env[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)


def parse_workspace(item: Any, *, source: str, env: Mapping[str, str]) -> Workspace:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{source}: each entry under 'workspaces' must be a mapping")
    slug = str(item.get("slug") or "")
    where = f"{source}: workspace '{slug or '?'}'"
    if not SLUG.match(slug):
        raise _fail(where, "slug must be lower-case letters, digits and _ (at most 63), e.g. 'acme_orders'")
    unknown = sorted(set(item) - KNOWN_FIELDS)
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(KNOWN_FIELDS))}")
    if not item.get("imap_conn_id"):
        raise _fail(where, "imap_conn_id is required: the id of an 'imapintake' Airflow connection")
    if "start_date" not in item:
        raise _fail(where, "start_date is required: the first poll imports mail received from that date on")
    types = item.get("accepted_types", list(DEFAULT_TYPES))
    if not isinstance(types, list) or not set(map(str, types)) <= set(KNOWN_TYPES) or not types:
        raise _fail(where, f"accepted_types must be a non-empty list drawn from {', '.join(KNOWN_TYPES)}")
    storage = str(item.get("storage_base") or env.get(STORAGE_VARIABLE) or "")
    if not storage:
        raise _fail(where, f"storage_base is not set: set it here (file:///path, s3://bucket/prefix) or set {STORAGE_VARIABLE}")
    on_disk = storage.startswith("file://")
    if item.get("storage_conn_id") and on_disk:
        raise _fail(where, "storage_conn_id is for an object store (s3://bucket/prefix and the like): a file:// storage_base needs none; remove it")
    storage_conn = None if on_disk else str(item.get("storage_conn_id") or env.get(STORAGE_CONN_VARIABLE) or "") or None
    recipients = item.get("recipients") or []
    if not isinstance(recipients, list):
        raise _fail(where, "recipients must be a list of addresses this workspace owns")
    conn_id = str(item["imap_conn_id"])
    push = _flag(item, "push", False, where, "true runs the DAG when new mail arrives (IMAP IDLE), besides its schedule")
    in_triggerer = _flag(item, "start_in_triggerer", True, where, "true checks for new mail in the triggerer first, so a "
                         "run with nothing to do never starts a worker (needs a running triggerer)")
    return Workspace(
        slug=slug,
        imap_conn_id=conn_id,
        start_date=_date(item["start_date"], where),
        storage_base=_expand(storage, env, where).rstrip("/"),
        folder=item.get("folder") or None,
        schedule=str(item.get("schedule") or "*/15 * * * *"),
        default_supplier=item.get("default_supplier") or None,
        supplier_rules=_rules(item.get("supplier_rules"), where),
        recipients=tuple(str(r).strip().lower() for r in recipients),
        accepted_types=frozenset(str(t) for t in types),
        max_attachment_mb=_number(item, "max_attachment_mb", 25, where, minimum=0.001),
        max_message_mb=_number(item, "max_message_mb", 60, where, minimum=0.001),
        postgres_conn_id=str(item.get("postgres_conn_id") or "imap_intake_db"),
        pool=str(item.get("pool") or f"imap_intake__{conn_id}"),
        batch_size=int(_number(item, "batch_size", 50, where, minimum=1)),
        import_tasks=int(_number(item, "import_tasks", 2, where, minimum=1)),
        max_import_attempts=int(_number(item, "max_import_attempts", 3, where, minimum=1)),
        importer=item.get("importer") or None,
        tags=tuple(str(t) for t in item.get("tags") or ()),
        description=str(item.get("description") or ""),
        push=push,
        storage_conn_id=storage_conn,
        alerts=_alerts(item.get("alerts"), where),
        start_in_triggerer=in_triggerer,
    )


def load_workspaces(text: str, *, source: str, env: Mapping[str, str]) -> tuple[Workspace, ...]:
    try:
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    items = document.get("workspaces") if isinstance(document, Mapping) else None
    if not isinstance(items, list):
        raise ConfigError(f"{source}: expected a top-level 'workspaces:' list")
    workspaces = tuple(parse_workspace(item, source=source, env=env) for item in items)
    seen: set[str] = set()
    for workspace in workspaces:
        if workspace.slug in seen:
            raise ConfigError(f"{source}: workspace slug '{workspace.slug}' appears twice; slugs name DAGs and must be unique")
        seen.add(workspace.slug)
    return workspaces


def find_workspace(workspaces: tuple[Workspace, ...], slug: str, *, source: str) -> Workspace:
    for workspace in workspaces:
        if workspace.slug == slug:
            return workspace
    known = ", ".join(w.slug for w in workspaces) or "(none)"
    raise ConfigError(f"{source}: no workspace '{slug}'; workspaces defined: {known}")

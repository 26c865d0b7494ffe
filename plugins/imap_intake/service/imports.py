"""Import stored attachments as purchase orders, claimed with FOR UPDATE SKIP LOCKED.

Each attachment is claimed, parsed and written in one transaction: several import tasks on
several workers never take the same row, and a crash releases the claim. A failure is
recorded with its reason and retried on a later run, up to ``max_import_attempts``, then
quarantined (listed by ``imap-intake status``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psycopg

from imap_intake.config import Workspace
from imap_intake.exceptions import ConfigError, OrderParseError
from imap_intake.orders import Order, parse

log = logging.getLogger(__name__)
Importer = Callable[..., Order]

#: An attachment an import task may take now (parameters: workspace, max attempts, now).
IMPORTABLE = """
workspace = %s
  AND (import_status = 'pending'
       OR (import_status = 'failed' AND attempts < %s AND (last_attempt_at IS NULL OR last_attempt_at < %s)))
"""
CLAIM = f"""
SELECT id, message, kind, sha256, supplier, attempts, original_filename
FROM imap_intake.attachment
WHERE {IMPORTABLE}
ORDER BY id
FOR UPDATE SKIP LOCKED
LIMIT 1
"""  # noqa: S608 - a constant
COUNT_IMPORTABLE = "SELECT count(*) FROM imap_intake.attachment WHERE " + IMPORTABLE  # noqa: S608 - constants


@dataclass
class ImportResult:
    workspace: str
    imported: int = 0
    failed: int = 0
    quarantined: int = 0
    orders: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def count_importable(workspace: Workspace, *, connection: psycopg.Connection, now: dt.datetime) -> int:
    """How many attachments the import tasks would take now: none means they have nothing to do."""
    row = connection.execute(COUNT_IMPORTABLE, (workspace.slug, workspace.max_import_attempts, now)).fetchone()
    return int(row[0]) if row else 0


def load_importer(dotted: str | None, *, workspace: str) -> Importer:
    """The workspace's own importer (``package.module:callable`` or ``package.module.callable``)."""
    if not dotted:
        return lambda data, *, kind, filename: parse(kind, data, filename=filename)
    module_name, sep, attribute = dotted.partition(":")
    if not sep:
        module_name, _, attribute = dotted.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"workspace '{workspace}': importer '{dotted}' cannot be imported: {exc}") from exc
    if not callable(target):
        raise ConfigError(f"workspace '{workspace}': importer '{dotted}' is not callable")
    return target  # type: ignore[no-any-return]


def _write_order(connection: psycopg.Connection, workspace: str, row: tuple, order: Order) -> int | None:  # type: ignore[type-arg]
    attachment, message, _kind, _sha, supplier = row[:5]
    inserted = connection.execute(
        """
        INSERT INTO imap_intake.purchase_order (workspace, attachment, message, supplier, format, order_number,
            order_date, currency, buyer, total, needs_review, review_reason)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (attachment) DO NOTHING RETURNING id
        """,
        (workspace, attachment, message, supplier, order.format, order.order_number, order.order_date,
         order.currency, order.buyer, order.total, order.needs_review, order.review_reason),
    ).fetchone()
    if inserted is None:
        return None
    order_id = int(inserted[0])
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO imap_intake.purchase_order_line (purchase_order, line_no, sku, description, quantity, unit, "
            "unit_price, amount) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(order_id, line.line_no, line.sku, line.description, line.quantity, line.unit, line.unit_price, line.amount)
             for line in order.lines],
        )
    return order_id


def import_pending(
    workspace: Workspace,
    *,
    connection: psycopg.Connection,
    read: Callable[[str], bytes],
    now: dt.datetime,
    limit: int | None = None,
) -> ImportResult:
    importer = load_importer(workspace.importer, workspace=workspace.slug)
    result = ImportResult(workspace=workspace.slug)
    while limit is None or result.imported + result.failed + result.quarantined < limit:
        with connection.transaction():
            row = connection.execute(CLAIM, (workspace.slug, workspace.max_import_attempts, now)).fetchone()
            if row is None:
                break
            attachment, _message, kind, sha256, _supplier, attempts, filename = row
            data = read(sha256)  # StorageError propagates: the claim rolls back and the task retries
            try:
                order = importer(data, kind=kind, filename=filename)
            except (OrderParseError, Exception) as exc:  # noqa: BLE001 - custom importers raise anything
                attempts += 1
                status = "quarantined" if attempts >= workspace.max_import_attempts else "failed"
                reason = str(exc) if isinstance(exc, OrderParseError) else f"{type(exc).__name__}: {exc}"
                connection.execute(
                    "UPDATE imap_intake.attachment SET import_status=%s, attempts=%s, last_error=%s, last_attempt_at=%s WHERE id=%s",
                    (status, attempts, reason[:2000], now, attachment),
                )
                log.warning("attachment %s (%s): %s (attempt %d, now %s)", attachment, filename, reason, attempts, status)
                if status == "quarantined":
                    result.quarantined += 1
                else:
                    result.failed += 1
                continue
            order_id = _write_order(connection, workspace.slug, row, order)
            connection.execute(
                "UPDATE imap_intake.attachment SET import_status='imported', attempts=%s, last_error=NULL, "
                "last_attempt_at=%s, imported_at=%s WHERE id=%s",
                (attempts + 1, now, now, attachment),
            )
            result.imported += 1
            if order_id is not None:
                result.orders.append(order_id)
            log.info("attachment %s (%s): imported as order %s (%s, %d lines)", attachment, filename, order_id, order.format, len(order.lines))
    log.info(
        "workspace %s: %d imported, %d failed (retried on a later run), %d quarantined%s",
        workspace.slug, result.imported, result.failed, result.quarantined,
        "" if result.imported + result.failed + result.quarantined else ": nothing pending to import",
    )
    return result

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
from imap_intake.orders.relation import POSSIBLE_DUPLICATE, REVISION, line_key, relation

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
    possible_duplicates: int = 0  # of the imported: linked to an earlier order with the same supplier and number
    revisions: int = 0
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


def _earlier_order(connection: psycopg.Connection, workspace: str, supplier: str | None, order: Order) -> tuple[int, str] | None:
    """The first order with this supplier and number, and how ``order`` relates to it; the lock makes
    two import slots importing the PDF and the CSV of one order at once see each other."""
    if not order.order_number:
        return None
    connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                       ("imap-intake order|" + "|".join((workspace, supplier or "", order.order_number)),))
    first = connection.execute(
        "SELECT id, total FROM imap_intake.purchase_order WHERE workspace=%s AND order_number=%s "
        "AND supplier IS NOT DISTINCT FROM %s AND related_to IS NULL ORDER BY id LIMIT 1",
        (workspace, order.order_number, supplier),
    ).fetchone()
    if first is None:
        return None
    lines = connection.execute(
        "SELECT sku, description, quantity, unit_price FROM imap_intake.purchase_order_line WHERE purchase_order=%s", (first[0],),
    ).fetchall()
    earlier = [line_key(*line) for line in lines]
    new = [line_key(line.sku, line.description, line.quantity, line.unit_price) for line in order.lines]
    return int(first[0]), relation(earlier, new, earlier_total=first[1], new_total=order.total)


def _write_order(connection: psycopg.Connection, workspace: str, row: tuple, order: Order) -> tuple[int | None, str | None]:  # type: ignore[type-arg]
    attachment, message, _kind, _sha, supplier = row[:5]
    earlier = _earlier_order(connection, workspace, supplier, order)
    related_to, kind = earlier if earlier else (None, None)
    inserted = connection.execute(
        """
        INSERT INTO imap_intake.purchase_order (workspace, attachment, message, supplier, format, order_number,
            order_date, currency, buyer, total, needs_review, review_reason, related_to, relation)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (attachment) DO NOTHING RETURNING id
        """,
        (workspace, attachment, message, supplier, order.format, order.order_number, order.order_date,
         order.currency, order.buyer, order.total, order.needs_review, order.review_reason, related_to, kind),
    ).fetchone()
    if inserted is None:
        return None, None
    order_id = int(inserted[0])
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO imap_intake.purchase_order_line (purchase_order, line_no, sku, description, quantity, unit, "
            "unit_price, amount) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(order_id, line.line_no, line.sku, line.description, line.quantity, line.unit, line.unit_price, line.amount)
             for line in order.lines],
        )
    if kind:
        log.warning("order %s (%s %s from %s) is a %s of order %s: linked, not a new order", order_id, order.format,
                    order.order_number, supplier or "no supplier", kind.replace("_", " "), related_to)
    return order_id, kind


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
            order_id, kind = _write_order(connection, workspace.slug, row, order)
            connection.execute(
                "UPDATE imap_intake.attachment SET import_status='imported', attempts=%s, last_error=NULL, "
                "last_attempt_at=%s, imported_at=%s WHERE id=%s",
                (attempts + 1, now, now, attachment),
            )
            result.imported += 1
            if order_id is not None:
                result.orders.append(order_id)
            if kind == POSSIBLE_DUPLICATE:
                result.possible_duplicates += 1
            elif kind == REVISION:
                result.revisions += 1
            log.info("attachment %s (%s): imported as order %s (%s, %d lines)", attachment, filename, order_id, order.format, len(order.lines))
    log.info(
        "workspace %s: %d imported, %d failed (retried on a later run), %d quarantined%s",
        workspace.slug, result.imported, result.failed, result.quarantined,
        "" if result.imported + result.failed + result.quarantined else ": nothing pending to import",
    )
    return result

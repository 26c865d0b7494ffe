"""Why a workspace imports nothing: what its mailbox holds and which of its rules exclude it. Pure.

The I/O shell (``service/survey.py``) fetches, read-only and without bodies, each recent message's
BODYSTRUCTURE, size, INTERNALDATE and address headers from every folder; this module judges each
outline the way a poll would (start_date, max_message_mb, recipients, attachment types and sizes,
supplier rules) and sums the verdicts per folder, naming the folder that holds the orders when it
is not the one configured. A part's type is told from its declared type and name: the poll sniffs
the bytes, which a survey never downloads, so a ``winmail.dat`` or a nameless
``application/octet-stream`` counts as *maybe*.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import decode_params, unquote
from typing import Any

from imap_intake.config import Workspace
from imap_intake.mime import headers
from imap_intake.routing import attribute, ownership

MAX_DEPTH = 20
BASE64_RATIO = 0.75  # BODYSTRUCTURE gives a part's encoded size; base64 decodes to three quarters of it

# What each rule's exclusion means and what to do about it: (title, advice).
VERDICTS: dict[str, tuple[str, str]] = {
    "would_import": ("carry an accepted attachment and pass the workspace's rules", ""),
    "maybe": ("carry an attachment whose type only its bytes tell (winmail.dat, application/octet-stream, .txt)",
              "the poll reads these and imports what is a PDF, CSV, XLSX or XML inside"),
    "before_start_date": ("arrived before start_date", "a poll reads mail from start_date on: lower start_date before the "
                          "first poll, or backfill those dates (docs/workspaces.md, Backfills)"),
    "message_too_large": ("are larger than max_message_mb", "raise max_message_mb, then 'imap-intake reread WORKSPACE --outcome too_large'"),
    "not_addressed": ("are not addressed to the workspace's recipients", "add the addresses they were sent to to recipients, "
                      "or remove recipients to take every message of the folder"),
    "no_attachment": ("have no attachment", "buyers must attach the order; a link or an order in the body is not imported"),
    "type_not_accepted": ("have attachments of types the workspace does not accept",
                          "add the type to accepted_types if it is an order (pdf, csv, xlsx, xml, edi)"),
    "attachment_too_large": ("have accepted attachments only over max_attachment_mb", "raise max_attachment_mb"),
    "no_supplier": ("match no supplier rule, and there is no default supplier", "add supplier_rules for their senders, or a default_supplier"),
}


@dataclass(frozen=True)
class PartOutline:
    filename: str
    declared_type: str
    size: int  # encoded bytes, as BODYSTRUCTURE gives them
    encoding: str = ""

    @property
    def kind(self) -> str:
        return kind_of(self.declared_type, self.filename)

    @property
    def decoded_size(self) -> int:
        return int(self.size * BASE64_RATIO) if self.encoding == "base64" else self.size


@dataclass(frozen=True)
class MessageOutline:
    uid: int
    internal_date: dt.datetime
    size: int
    parts: tuple[PartOutline, ...]
    sender: str | None = None
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class FolderSurvey:
    name: str
    special: str = ""  # \All, \Trash, \Junk, ... as LIST says
    total: int = 0  # messages in the folder
    recent: int = 0  # of them, in the window
    examined: int = 0  # of them, judged (the most recent, up to the survey's bound)
    verdicts: Counter[str] = field(default_factory=Counter)
    kinds_refused: Counter[str] = field(default_factory=Counter)  # attachment kinds not accepted
    error: str = ""

    @property
    def orders(self) -> int:
        return self.verdicts["would_import"] + self.verdicts["maybe"]


@dataclass(frozen=True)
class Survey:
    workspace: str
    account: str
    folder: str  # the configured one
    days: int
    now: dt.datetime
    folders: tuple[FolderSurvey, ...]
    notes: tuple[str, ...] = ()
    per_folder_limit: int = 0

    @property
    def configured(self) -> FolderSurvey | None:
        return next((f for f in self.folders if f.name == self.folder), None)

    @property
    def suggestion(self) -> FolderSurvey | None:
        """Another folder with more orders than the configured one (never Trash, Junk or All Mail)."""
        here = self.configured.orders if self.configured else 0
        candidates = [f for f in self.folders if f.name != self.folder and f.special not in {"\\Trash", "\\Junk", "\\All"}]
        best = max(candidates, key=lambda f: f.orders, default=None)
        return best if best is not None and best.orders > here else None


def kind_of(declared_type: str, filename: str) -> str:
    """pdf, csv, xlsx, xml, tnef, image, unknown (octet-stream without a telling name) or other."""
    declared, name = declared_type.lower(), filename.lower()
    ext = name.rpartition(".")[2] if "." in name else ""
    if declared == "application/ms-tnef" or name == "winmail.dat":
        return "tnef"
    if declared == "application/pdf" or ext == "pdf":
        return "pdf"
    if "spreadsheetml" in declared or ext == "xlsx":
        return "xlsx"
    if declared in {"text/csv", "application/csv", "text/comma-separated-values", "text/tab-separated-values"} or ext in {"csv", "tsv"}:
        return "csv"
    if declared in {"application/xml", "text/xml"} or declared.endswith("+xml") or ext == "xml":
        return "xml"
    if declared in {"application/edi-x12", "application/edifact"} or ext in {"edi", "x12", "edifact", "850"}:
        return "edi"
    if declared.startswith("image/"):
        return "image"
    if (declared in {"application/octet-stream", ""} and ext in {"", "dat", "bin"}) or ext == "txt":
        return "unknown"  # only the bytes tell (a .txt holding a CSV export is imported as CSV)
    return ext or declared or "other"


def judge(workspace: Workspace, message: MessageOutline, connection_default: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The verdict a poll would reach (a key of ``VERDICTS``), and the refused attachment kinds."""
    if message.internal_date.date() < workspace.start_date:
        return "before_start_date", ()
    if message.size > workspace.max_message_bytes:
        return "message_too_large", ()
    if ownership(workspace, message.recipients):
        return "not_addressed", ()
    if not message.parts:
        return "no_attachment", ()
    kinds = [part.kind for part in message.parts]
    accepted = [p for p in message.parts if p.kind in workspace.accepted_types]
    maybe = any(kind in {"tnef", "unknown"} for kind in kinds)
    refused = tuple(k for k in kinds if k not in workspace.accepted_types and k not in {"tnef", "unknown"})
    if not accepted and not maybe:
        return "type_not_accepted", refused
    if accepted and all(p.decoded_size > workspace.max_attachment_bytes for p in accepted) and not maybe:
        return "attachment_too_large", ()
    if not attribute(workspace, message.sender, connection_default).routed:
        return "no_supplier", ()
    return ("would_import" if accepted else "maybe"), ()


def tally(name: str, special: str, total: int, recent: int, messages: Iterable[MessageOutline], workspace: Workspace,
          connection_default: str | None = None) -> FolderSurvey:
    verdicts: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    examined = 0
    for message in messages:
        examined += 1
        verdict, kinds = judge(workspace, message, connection_default)
        verdicts[verdict] += 1
        refused.update(kinds)
    return FolderSurvey(name, special, total, recent, examined, verdicts, refused)


# -- BODYSTRUCTURE (RFC 3501 7.4.2, as IMAPClient parses it) ---------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def _params(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, (tuple, list)):
        return []
    items = list(value)
    return [(_text(k).lower(), _text(v)) for k, v in zip(items[::2], items[1::2], strict=False)]


def _name(params: list[tuple[str, str]]) -> str:
    """The file name among a part's parameters: RFC 2231 continuations and charsets collapsed by the
    email package (as ``Message.get_param`` does), then decoded like a parsed message's names."""
    found = dict(decode_params([("", ""), *params])[1:])
    for key in ("filename", "name"):
        value = found.get(key)
        if value:
            return headers.decode_parameter((value[0], value[1], unquote(value[2])) if isinstance(value, tuple) else unquote(value))
    return ""


def outline_parts(structure: Any) -> tuple[PartOutline, ...]:
    """The attachment-like leaves of a BODYSTRUCTURE: parts with a file name or an attachment
    disposition, forwarded messages opened; a walk with a stack, no recursion."""
    found: list[PartOutline] = []
    stack: list[tuple[Any, int]] = [(structure, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (tuple, list)) or not node or depth > MAX_DEPTH:
            continue
        if isinstance(node[0], (list, tuple)):
            # multipart: IMAPClient gives ([parts], subtype, ...) at the top, but the raw (part, part, ..., subtype,
            # ...) inside a message/rfc822 part, whose body it does not re-parse
            parts = node[0] if isinstance(node[0], list) else _leading_tuples(node)
            stack.extend((part, depth + 1) for part in reversed(parts))
            continue
        major, minor = _text(node[0]).lower(), _text(node[1] if len(node) > 1 else "").lower()
        declared = f"{major}/{minor}"
        if declared == "message/rfc822" and len(node) > 8:
            stack.append((node[8], depth + 1))
            continue
        disposition_at = 9 if major == "text" else 8
        disposition = node[disposition_at] if len(node) > disposition_at else None
        disposition_type, disposition_params = "", []
        if isinstance(disposition, (tuple, list)) and disposition:
            disposition_type = _text(disposition[0]).lower()
            disposition_params = _params(disposition[1] if len(disposition) > 1 else None)
        name = _name(disposition_params) or _name(_params(node[2] if len(node) > 2 else None))
        if not name and disposition_type != "attachment":
            continue  # a body text, an inline image without a name
        if major == "multipart" or declared in {"application/pkcs7-signature", "application/pgp-signature"}:
            continue
        size = node[6] if len(node) > 6 and isinstance(node[6], int) else 0
        found.append(PartOutline(name, declared, size, _text(node[5] if len(node) > 5 else "").lower()))
    return tuple(found)


def _leading_tuples(node: Any) -> list[Any]:
    parts = []
    for item in node:
        if not isinstance(item, (tuple, list)):
            break
        parts.append(item)
    return parts


def header_addresses(raw: bytes) -> tuple[str | None, tuple[str, ...]]:
    """(sender, recipients) of a ``BODY[HEADER.FIELDS (FROM TO CC DELIVERED-TO X-ORIGINAL-TO)]`` answer."""
    from email.parser import BytesHeaderParser

    from imap_intake.mime.addresses import addresses, sender

    msg = BytesHeaderParser(policy=headers.POLICY).parsebytes(raw)
    values: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "To", "Cc"):
        values += [headers.text_of(headers.raw_bytes(v)) for v in msg.get_all(name, [])]
    return sender(headers.text_of(headers.raw_bytes(msg.get("From")))), addresses(values)


def render(survey: Survey) -> list[str]:
    """The survey as the lines ``imap-intake diagnose`` prints (the status page shows the same facts)."""
    lines = [f"workspace '{survey.workspace}': {survey.account}, folder '{survey.folder}', mail of the last {survey.days} days "
             f"(up to the {survey.per_folder_limit} most recent messages per folder), read-only, no bodies downloaded"]
    for folder in survey.folders:
        mark = " (configured)" if folder.name == survey.folder else ""
        special = f" {folder.special}" if folder.special else ""
        if folder.error:
            lines.append(f"  {folder.name}{mark}{special}: {folder.error}")
            continue
        lines.append(f"  {folder.name}{mark}{special}: {folder.total} messages, {folder.recent} in the window, "
                     f"{folder.examined} examined, {folder.orders} with orders the workspace would import")
        if folder.name == survey.folder or folder.orders:
            for key, count in sorted(folder.verdicts.items(), key=lambda kv: -kv[1]):
                title, advice = VERDICTS[key]
                if key == "type_not_accepted":
                    title += f" (types: {', '.join(f'{k} x{n}' for k, n in folder.kinds_refused.most_common(5))})"
                lines.append(f"    {count} {title}" + (f": {advice}" if advice else ""))
    lines += [f"  {line}" for line in conclusions(survey)]
    lines += [f"  note: {note}" for note in survey.notes]
    return lines


def conclusions(survey: Survey) -> list[str]:
    here, other = survey.configured, survey.suggestion
    out: list[str] = []
    if other is not None:
        out.append(f"orders are in folder '{other.name}' ({other.orders} of its recent messages), not '{survey.folder}': "
                   f"set folder: {other.name} on the workspace (or the connection)")
    if here is not None and not here.error and here.examined and not here.orders:
        main = max((k for k in here.verdicts if k not in {"would_import", "maybe"}), key=lambda k: here.verdicts[k], default=None)
        if main:
            out.append(f"in '{survey.folder}' nothing would be imported: most messages {VERDICTS[main][0]} ({here.verdicts[main]})")
    if here is not None and not here.error and not here.recent:
        out.append(f"'{survey.folder}' received no mail in the last {survey.days} days")
    return out


def provider_notes(provider: str, host: str) -> tuple[str, ...]:
    host = host.lower()
    if provider == "gmail" or host.endswith(("gmail.com", "googlemail.com")):
        return ("Gmail shows labels as folders: a message with two labels is in both, and '[Gmail]/All Mail' holds every "
                "message; a filter that labels orders and skips the inbox puts them only in the label's folder",
                "Gmail hides labels from IMAP when 'Show in IMAP' is off (Settings > Labels): such a label's mail is not listed here")
    if provider == "office365" or host.endswith(("office365.com", "outlook.com")):
        return ("Exchange Online: a shared mailbox is a mailbox of its own, not a folder of yours: sign in with the shared "
                "mailbox's address as the login (the app needs FullAccess on it), not your own",
                "Exchange folders live under the mailbox root ('Orders', not 'Inbox/Orders', unless it is a subfolder of the inbox)")
    return ()

"""``imap-intake diagnose``: survey a workspace's mailbox read-only and say why it imports nothing.

The I/O shell of ``imap_intake.survey``: one IMAP session, every selectable folder EXAMINEd,
``SEARCH SINCE`` for the window, then structure, size, date and address headers of the most recent
messages (``MAX_PER_FOLDER``), fetched ``CHUNK`` at a time. No body is downloaded and nothing is
written anywhere, so its cost is bounded by folders x ``MAX_PER_FOLDER``, not by the mailbox's size.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from imap_intake.config import Workspace
from imap_intake.exceptions import ImapIntakeError, MailboxUnreachable
from imap_intake.hooks.imap import ImapIntakeHook
from imap_intake.imap.mailbox import Mailbox
from imap_intake.survey import FolderSurvey, MessageOutline, Survey, header_addresses, outline_parts, provider_notes, tally
from imap_intake.workspaces import get_workspace

log = logging.getLogger(__name__)
MAX_PER_FOLDER = 500
MAX_FOLDERS = 100
CHUNK = 100
SPECIAL_USE = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


def survey_workspace(slug: str, *, now: dt.datetime, days: int = 30, per_folder: int = MAX_PER_FOLDER,
                     workspaces_file: str | Path | None = None) -> Survey:
    workspace = get_workspace(slug, workspaces_file)
    settings = ImapIntakeHook(workspace.imap_conn_id).get_settings()
    configured = workspace.folder or settings.folder
    since = (now - dt.timedelta(days=days)).date()
    results: list[FolderSurvey] = []
    with Mailbox.open(settings) as mailbox:
        listed = mailbox.folders_with_flags()
        selectable = [(name, flags) for name, flags in listed if not any(f.lower() in {"\\noselect", "\\nonexistent"} for f in flags)]
        if configured not in {name for name, _ in selectable}:
            results.append(FolderSurvey(configured, error=f"folder '{configured}' does not exist: set folder to one listed here"))
        # The configured folder first, then the others by name; a mailbox of thousands of folders is cut off.
        ordered = sorted(selectable, key=lambda item: (item[0] != configured, item[0].lower()))[:MAX_FOLDERS]
        for index, (name, flags) in enumerate(ordered, 1):
            special = next((f for f in flags if f in SPECIAL_USE), "")
            log.info("surveying folder %d/%d '%s'", index, len(ordered), name)
            try:
                results.append(_folder(mailbox, name, special, since, per_folder, workspace, settings.default_supplier))
            except MailboxUnreachable:
                raise
            except ImapIntakeError as exc:  # a folder the server will not open: say so, survey the rest
                results.append(FolderSurvey(name, special, error=str(exc)))
        notes = list(provider_notes(settings.provider, settings.host))
        if len(selectable) > MAX_FOLDERS:
            notes.append(f"the mailbox has {len(selectable)} folders; the first {MAX_FOLDERS} by name were surveyed")
    return Survey(workspace=slug, account=f"{settings.username} on {settings.host}", folder=configured, days=days, now=now, folders=tuple(results),
                  notes=tuple(notes), per_folder_limit=per_folder)


def _folder(mailbox: Mailbox, name: str, special: str, since: dt.date, per_folder: int, workspace: Workspace,
            default: str | None) -> FolderSurvey:
    state = mailbox.examine(name)
    uids = mailbox.uids_between(since, None) if state.exists else []
    recent = sorted(uids)[-per_folder:] if per_folder else []
    outlines: list[MessageOutline] = []
    for start in range(0, len(recent), CHUNK):
        for uid, item in sorted(mailbox.outlines(recent[start:start + CHUNK]).items()):
            header = next((bytes(v) for k, v in item.items() if k.startswith(b"BODY[HEADER")), b"")
            sender, recipients = header_addresses(header)
            outlines.append(MessageOutline(uid, item[b"INTERNALDATE"], int(item.get(b"RFC822.SIZE", 0)),
                                           outline_parts(item.get(b"BODYSTRUCTURE")), sender, recipients))
    return tally(name, special, state.exists, len(uids), outlines, workspace, default)

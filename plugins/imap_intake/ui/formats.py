"""How the status page writes times, windows, accounts and descriptions. Pure."""

from __future__ import annotations

import datetime as dt
import re

from markupsafe import Markup, escape


def utc(moment: dt.datetime | None, *, seconds: bool = True) -> str:
    """A moment in UTC, saying so: the page is read from many time zones."""
    if moment is None:
        return "–"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def window(since: dt.datetime | None, until: dt.datetime | None) -> str:
    """A backfill window [since, until): whole days as days (the last one inclusive), else with times."""
    if since is None:
        return ""
    if until is None:
        return f"{utc(since, seconds=False)} → now"
    since, until = since.astimezone(dt.UTC), until.astimezone(dt.UTC)
    midnight = dt.time()
    if since.time() == midnight and until.time() == midnight and until - since >= dt.timedelta(days=1):
        last = (until - dt.timedelta(days=1)).date()
        return f"{since.date()}" + (f" – {last} (whole days, UTC)" if last != since.date() else " (the whole day, UTC)")
    same_day = since.date() == until.date()
    return f"{since:%Y-%m-%d %H:%M} → {until:%H:%M}" + " UTC" if same_day else f"{since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} UTC"


def account(value: str | None) -> str:
    """The ledger's account key ``user@host`` as a reader says it: ``user on host``."""
    if not value:
        return "–"
    user, at, host = value.rpartition("@")
    return f"{user} on {host}" if at and user else value


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: str | None) -> Markup:
    """A description with its `code` spans shown as code (everything else escaped)."""
    escaped = str(escape(text or ""))
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped))  # noqa: S704 - escaped above

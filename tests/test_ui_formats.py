"""How the status page writes times, windows, accounts and descriptions."""

from __future__ import annotations

import datetime as dt

from imap_intake.ui.formats import account, code_spans, utc, window

UTC = dt.UTC


def test_times_say_utc_whatever_zone_they_come_in() -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert utc(dt.datetime(2026, 11, 1, 9, 30, tzinfo=berlin)) == "2026-11-01 08:30:00 UTC"
    assert utc(None) == "–"


def test_windows_show_times_unless_they_are_whole_days() -> None:
    assert window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 11, 1, 0, 15, tzinfo=UTC)) == "2026-11-01 00:00 → 00:15 UTC"
    assert window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC)) == "2026-11-01 – 2026-11-30 (whole days, UTC)"
    assert window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 11, 2, tzinfo=UTC)) == "2026-11-01 (the whole day, UTC)"
    assert window(dt.datetime(2026, 11, 1, 23, tzinfo=UTC), dt.datetime(2026, 11, 2, 1, tzinfo=UTC)) == "2026-11-01 23:00 → 2026-11-02 01:00 UTC"


def test_accounts_and_descriptions_read_as_words() -> None:
    assert account("orders@example.test@127.0.0.1") == "orders@example.test on 127.0.0.1"
    assert str(code_spans("Seeded by `make demo` <script>")) == "Seeded by <code>make demo</code> &lt;script&gt;"

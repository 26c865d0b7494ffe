"""read_ahead: IMAP reads one group ahead in a thread of their own, bounded in bytes, errors raised
in the caller. A unit test: the mailbox is a fake that records what was asked and when."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import pytest

from imap_intake.exceptions import MailboxError
from imap_intake.imap.mailbox import FetchedMessage, MessageMeta
from imap_intake.service.reading import read_ahead

WHEN = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


class FakeMailbox:
    def __init__(self, sizes: dict[int, int], *, fail_on_uid: int | None = None) -> None:
        self.sizes = sizes
        self.fail_on_uid = fail_on_uid
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.threads: set[str] = set()
        self.fetched = threading.Event()

    def metadata(self, uids: Sequence[int]) -> list[MessageMeta]:
        self.threads.add(threading.current_thread().name)
        self.calls.append(("metadata", tuple(uids)))
        return [MessageMeta(uid, WHEN, self.sizes[uid]) for uid in uids if uid in self.sizes]

    def bodies(self, uids: Sequence[int]) -> list[FetchedMessage]:
        self.threads.add(threading.current_thread().name)
        self.calls.append(("bodies", tuple(uids)))
        if self.fail_on_uid in uids:
            raise MailboxError(f"connection 'fake': fetching UID {self.fail_on_uid} failed")
        self.fetched.set()
        return [FetchedMessage(uid, WHEN, b"x" * self.sizes[uid]) for uid in uids]


def test_groups_come_in_uid_order_from_a_reader_thread_one_group_ahead() -> None:
    box = FakeMailbox({uid: 100 for uid in range(1, 11)})
    seen = []
    groups = read_ahead(box, [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]], max_message_bytes=1000)  # type: ignore[arg-type]
    first = next(groups)
    # While the caller still holds batch 1, the reader has already fetched batch 2's bodies.
    for _ in range(200):
        if ("bodies", (4, 5, 6)) in box.calls:
            break
        threading.Event().wait(0.01)
    assert ("bodies", (4, 5, 6)) in box.calls
    seen.append((first.batch, [m.uid for m in first.metas], sorted(first.bodies)))
    seen += [(g.batch, [m.uid for m in g.metas], sorted(g.bodies)) for g in groups]
    assert seen == [(1, [1, 2, 3], [1, 2, 3]), (2, [4, 5, 6], [4, 5, 6]), (3, [7, 8, 9], [7, 8, 9]), (4, [10], [10])]
    assert box.threads == {"imap-intake-reader"}  # the caller never touches the connection


def test_bodies_held_stay_within_the_bound_and_a_large_group_waits_for_the_one_before() -> None:
    box = FakeMailbox({1: 600, 2: 600, 3: 50})
    groups = read_ahead(box, [[1], [2], [3]], max_message_bytes=1000, ahead_bytes=1000)  # type: ignore[arg-type]
    first = next(groups)
    threading.Event().wait(0.3)
    assert ("bodies", (2,)) not in box.calls  # 600 + 600 > 1000: not read while UID 1 is held
    assert [m.uid for m in first.metas] == [1]
    assert [[m.uid for m in g.metas] for g in groups] == [[2], [3]]


def test_too_large_messages_are_listed_but_not_downloaded_and_kept_filters_metas() -> None:
    box = FakeMailbox({1: 100, 2: 5000, 3: 100})
    groups = list(read_ahead(box, [[1, 2, 3]], max_message_bytes=1000, keep=lambda m: m.uid != 3))  # type: ignore[arg-type]
    assert [[m.uid for m in g.metas] for g in groups] == [[1, 2]]
    assert sorted(groups[0].bodies) == [1] and ("bodies", (1,)) in box.calls


def test_a_reader_error_is_raised_in_the_caller_after_the_groups_before_it() -> None:
    box = FakeMailbox({1: 10, 2: 10}, fail_on_uid=2)
    groups = read_ahead(box, [[1], [2]], max_message_bytes=1000)  # type: ignore[arg-type]
    assert [m.uid for m in next(groups).metas] == [1]
    with pytest.raises(MailboxError, match="UID 2"):
        next(groups)


def test_stopping_early_ends_the_reader_before_returning() -> None:
    box = FakeMailbox({uid: 10 for uid in range(1, 100)})
    groups = read_ahead(box, [[uid] for uid in range(1, 100)], max_message_bytes=1000, ahead_bytes=10)  # type: ignore[arg-type]
    next(groups)
    groups.close()
    calls = len(box.calls)
    threading.Event().wait(0.2)
    assert len(box.calls) == calls < 10  # nothing read after close(); the connection is the caller's again
    assert not any(t.name == "imap-intake-reader" for t in threading.enumerate())


def test_sizes_and_dates_are_fetched_for_thousands_of_uids_at_once_not_per_batch() -> None:
    from imap_intake.service.reading import METADATA_UIDS

    count = METADATA_UIDS + 120
    box = FakeMailbox({uid: 10 for uid in range(1, count + 1) if uid != 7})  # UID 7 expunged meanwhile
    batches = [list(range(start, min(start + 50, count + 1))) for start in range(1, count + 1, 50)]
    groups = list(read_ahead(box, batches, max_message_bytes=1000))  # type: ignore[arg-type]
    metadata_calls = [uids for call, uids in box.calls if call == "metadata"]
    assert [len(uids) for uids in metadata_calls] == [METADATA_UIDS, 120]  # 2 round trips, not one per batch
    assert [g.batch for g in groups] == list(range(1, len(batches) + 1))
    assert [m.uid for g in groups for m in g.metas] == [uid for uid in range(1, count + 1) if uid != 7]

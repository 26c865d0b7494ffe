"""Attachments in S3, over HTTP: Airflow's ObjectStoragePath with an ``aws`` connection (its endpoint
URL in the connection) against moto's S3 server, and a real poll of a real Dovecot mailbox recorded in a
real Postgres. A batch's objects are written when it settles, just before its COMMIT; what a batch that
never committed wrote is re-used by content address; a server killed mid-batch fails the poll and the
retry stores and records everything once; a bucket the connection may not write to stops the poll with
an error naming bucket and connection before any message is recorded."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import psycopg
import pytest

from devstack.dovecot import flags
from devstack.s3 import S3Server
from devstack.samples import PO_CSV_EN, message
from imap_intake.exceptions import StorageError
from imap_intake.service.poll import poll
from imap_intake.store.storage import PROBE_KEY, AttachmentStore
from tests.conftest import make_settings, make_workspace
from tests.service.helpers import NOW, attachment_rows, outcomes

pytestmark = pytest.mark.integration
BUCKET = "orders"


def _mail(user: str, count: int, tag: str) -> list[tuple[bytes, None]]:
    """``count`` messages, each with a CSV order of its own and a PDF all of them share (the same bytes:
    one object for all)."""
    shared = b"%PDF-1.4\n% terms and conditions, the same in every order\n%%EOF\n"
    return [(message(sender="buyer@acme.example", to=user, subject=f"PO {tag}-{n}", attachments=[
        (f"po-{n}.csv", "text/csv", PO_CSV_EN + f"PO-{tag}-{n},2026-11-04,Z-{n},x,1,1.00,1.00,USD\n".encode()),
        ("terms.pdf", "application/pdf", shared),
    ]).as_bytes(), None) for n in range(count)]


@pytest.fixture()
def s3_conn(s3: S3Server, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An ``aws`` Airflow connection to the session's S3 server (a fresh id: Airflow caches a
    filesystem per connection), and a bucket."""
    conn_id = unique("s3_")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", s3.connection_uri())
    if BUCKET not in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}:
        s3.make_bucket(BUCKET)
    yield conn_id


def _objects(server: S3Server, prefix: str) -> dict[str, bytes]:
    client = server.client()
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in server.keys(BUCKET, prefix)}


def _assert_every_row_names_its_object(db: psycopg.Connection, server: S3Server, slug: str, prefix: str, expected: int) -> None:
    rows = db.execute("SELECT sha256, storage_uri FROM imap_intake.attachment WHERE workspace=%s", (slug,)).fetchall()
    assert len(rows) == expected
    objects = _objects(server, prefix)
    for sha256, uri in rows:
        key = uri.removeprefix(f"s3://{BUCKET}/")
        assert key in objects and hashlib.sha256(objects[key]).hexdigest() == sha256
    # one object per distinct content, named by it; no temporary (the probe's one key only after a failed write)
    assert sorted(set(objects) - {f"{prefix}/{PROBE_KEY}"}) == sorted({f"{prefix}/sha256/{s[:2]}/{s}" for s, _ in rows})


def test_objects_are_written_when_the_batch_settles_and_every_row_names_one(s3, s3_conn, db, dovecot, mail_user, append, unique) -> None:  # type: ignore[no-untyped-def]
    prefix = f"intake/{unique('ws')}"
    store = AttachmentStore(f"s3://{BUCKET}/{prefix}", conn_id=s3_conn)
    blob = b"staged, not settled"
    store.stage(blob, hashlib.sha256(blob).hexdigest())
    assert s3.keys(BUCKET, prefix) == []  # nothing reaches the bucket while a batch is only staged
    store.discard()
    store.settle()
    assert s3.keys(BUCKET, prefix) == []  # ... nor after it rolled back

    append(mail_user, _mail(mail_user, 7, "a"))
    before = flags(dovecot, mail_user)
    workspace = make_workspace(unique("ws"), storage_base=f"s3://{BUCKET}/{prefix}", storage_conn_id=s3_conn, batch_size=3)
    result = poll(workspace, make_settings(dovecot, mail_user), connection=db, store=store, probe_store=store.probe, now=NOW)
    assert result.recorded == 7
    _assert_every_row_names_its_object(db, s3, workspace.slug, prefix, 14)
    assert len(s3.keys(BUCKET, prefix)) == 8  # 7 orders and the one shared PDF
    assert store.get(db.execute("SELECT sha256 FROM imap_intake.attachment WHERE workspace=%s LIMIT 1",
                                (workspace.slug,)).fetchone()[0])
    assert flags(dovecot, mail_user) == before


class _CrashBeforeCommit(AttachmentStore):
    """Settles the second batch's objects, then the process "dies" before its COMMIT (the ledger's
    connection is lost: a transient fault, the transaction rolls back)."""

    settled = 0

    def settle(self) -> None:
        super().settle()
        self.settled += 1
        if self.settled == 2:
            raise psycopg.OperationalError("simulated: the connection was lost before COMMIT")


def test_a_batch_that_never_committed_leaves_objects_the_retry_reuses(s3, s3_conn, db, dovecot, mail_user, append, unique) -> None:  # type: ignore[no-untyped-def]
    prefix = f"intake/{unique('ws')}"
    base = f"s3://{BUCKET}/{prefix}"
    append(mail_user, _mail(mail_user, 9, "b"))
    workspace = make_workspace(unique("ws"), storage_base=base, storage_conn_id=s3_conn, batch_size=3)
    crashing = _CrashBeforeCommit(base, conn_id=s3_conn)
    with pytest.raises(psycopg.OperationalError):
        poll(workspace, make_settings(dovecot, mail_user), connection=db, store=crashing, probe_store=crashing.probe, now=NOW)
    assert len(attachment_rows(db, workspace.slug)) == 6  # the first batch committed, the second did not
    orphans = set(s3.keys(BUCKET, prefix)) - {f"{prefix}/sha256/{s[:2]}/{s}" for _, s, _ in attachment_rows(db, workspace.slug)}
    assert len(orphans) == 3  # the uncommitted batch's orders, complete, named by their content

    store = AttachmentStore(base, conn_id=s3_conn)
    poll(workspace, make_settings(dovecot, mail_user), connection=db, store=store, probe_store=store.probe, now=NOW)
    _assert_every_row_names_its_object(db, s3, workspace.slug, prefix, 18)  # the orphans are now named: re-used
    assert sum(outcomes(db, workspace.slug).values()) == 9


def test_the_s3_server_killed_mid_batch_fails_the_poll_and_the_retry_stores_everything_once(  # type: ignore[no-untyped-def]
        db, dovecot, mail_user, append, unique, monkeypatch) -> None:
    server = S3Server.create(durable=True)  # its own: killed and restarted with what it held
    server.start()
    try:
        server.make_bucket(BUCKET)
        conn_id = unique("s3_")
        # botocore retries a refused connection four times with backoff (Airflow's default, kept for real
        # use); here once is enough to see the server gone, and the test takes seconds instead of half a minute
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", server.connection_uri(config_kwargs={"retries": {"max_attempts": 0}}))
        prefix = f"intake/{unique('ws')}"
        base = f"s3://{BUCKET}/{prefix}"
        append(mail_user, _mail(mail_user, 9, "c"))
        before = flags(dovecot, mail_user)
        workspace = make_workspace(unique("ws"), storage_base=base, storage_conn_id=conn_id, batch_size=3)
        store = AttachmentStore(base, conn_id=conn_id)
        writes, lock = [0], threading.Lock()
        put = store._put_remote

        def killed_mid_second_batch(sha256: str, data: bytes | memoryview) -> None:
            with lock:
                writes[0] += 1
                if writes[0] == 8:  # the second batch (6 writes a batch: 3 orders, 3 times the PDF), mid-way
                    server.kill()
            put(sha256, data)

        store._put_remote = killed_mid_second_batch  # type: ignore[method-assign]
        with pytest.raises(StorageError, match=f"bucket '{BUCKET}', connection '{conn_id}'"):
            poll(workspace, make_settings(dovecot, mail_user), connection=db, store=store, probe_store=store.probe, now=NOW)
        committed = len(attachment_rows(db, workspace.slug))
        assert committed == 6  # the first batch (3 orders + the shared PDF per message); the second rolled back
        assert "failed" not in outcomes(db, workspace.slug)  # the store being down is not the messages' fault

        server.restart()
        retry = AttachmentStore(base, conn_id=conn_id)
        poll(workspace, make_settings(dovecot, mail_user), connection=db, store=retry, probe_store=retry.probe, now=NOW)
        _assert_every_row_names_its_object(db, server, workspace.slug, prefix, 18)
        assert outcomes(db, workspace.slug) == {"imported": 9}
        status = db.execute("SELECT status, error FROM imap_intake.poll WHERE workspace=%s ORDER BY id", (workspace.slug,)).fetchall()
        assert [s for s, _ in status] == ["failed", "ok"] and BUCKET in status[0][1]
        assert flags(dovecot, mail_user) == before
    finally:
        server.destroy()


def test_a_bucket_the_connection_may_not_write_stops_the_poll_before_any_message_is_recorded(  # type: ignore[no-untyped-def]
        db, dovecot, mail_user, append, unique, monkeypatch) -> None:
    server = S3Server.create()  # its own: IAM is enforced on it
    server.start()
    try:
        server.make_bucket(BUCKET)
        admin = server.user("admin", ["s3:*"], BUCKET)
        reader = server.user("reader", ["s3:GetObject", "s3:ListBucket"], BUCKET)
        # what docs/workspaces.md asks for; moto also wants "s3:HeadObject" for a HEAD, an action AWS's IAM does
        # not have (AWS authorizes HeadObject by s3:GetObject)
        writer = server.user("writer", ["s3:PutObject", "s3:GetObject", "s3:HeadObject"], BUCKET)
        server.enforce_auth()
        conn_id = unique("s3_readonly_")
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", server.connection_uri(*reader))
        prefix = f"intake/{unique('ws')}"
        base = f"s3://{BUCKET}/{prefix}"
        append(mail_user, _mail(mail_user, 4, "d"))
        workspace = make_workspace(unique("ws"), storage_base=base, storage_conn_id=conn_id, batch_size=3)
        store = AttachmentStore(base, conn_id=conn_id)
        with pytest.raises(StorageError) as refused:
            poll(workspace, make_settings(dovecot, mail_user), connection=db, store=store, probe_store=store.probe, now=NOW)
        text = str(refused.value)
        assert f"bucket '{BUCKET}'" in text and f"connection '{conn_id}'" in text and "s3:PutObject" in text
        assert reader[1] not in text and admin[1] not in text  # no secret in the message
        assert outcomes(db, workspace.slug) == {} and attachment_rows(db, workspace.slug) == []
        assert db.execute("SELECT count(*) FROM imap_intake.cursor WHERE workspace=%s", (workspace.slug,)).fetchone()[0] == 0
        error = db.execute("SELECT error FROM imap_intake.poll WHERE workspace=%s", (workspace.slug,)).fetchone()[0]
        assert f"bucket '{BUCKET}'" in error and "s3:PutObject" in error
        assert server.client(key=admin[0], secret=admin[1]).list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0

        # the permissions docs/workspaces.md asks for, and no more, are enough: PUT and GET of objects
        conn_id = unique("s3_writer_")
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", server.connection_uri(*writer))
        store = AttachmentStore(base, conn_id=conn_id)
        result = poll(replace(workspace, storage_conn_id=conn_id), make_settings(dovecot, mail_user), connection=db, store=store,
                      probe_store=store.probe, now=NOW)
        assert outcomes(db, workspace.slug) == {"imported": 4} and result.attachments == 8
        sha256 = attachment_rows(db, workspace.slug)[0][1]
        assert hashlib.sha256(store.get(sha256)).hexdigest() == sha256
    finally:
        server.destroy()


def test_a_bucket_that_does_not_exist_is_named_with_what_to_do(s3, s3_conn) -> None:  # type: ignore[no-untyped-def]
    store = AttachmentStore("s3://no-such-bucket/intake", conn_id=s3_conn)
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist for connection '.*': create it"):
        store.probe()


def test_a_missing_filesystem_or_connection_says_what_to_install_or_add(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two dead ends an object store's own error does not explain: no s3fs in this Airflow (fsspec's
    ImportError), and a storage_conn_id Airflow does not know (the Amazon provider then goes on
    without credentials)."""
    store = AttachmentStore(f"s3://{BUCKET}/p", conn_id="not_defined_anywhere")
    assert "apache-airflow-providers-amazon[s3fs]" in store._remote_hint(ImportError("Install s3fs to access S3"))
    hint = store._remote_hint(OSError("Could not connect to the endpoint URL"))
    assert "connection 'not_defined_anywhere' (storage_conn_id) is not defined" in hint and "type aws" in hint
    monkeypatch.setenv("AIRFLOW_CONN_NOW_DEFINED", "aws://k:s@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A1")
    defined = AttachmentStore(f"s3://{BUCKET}/p", conn_id="now_defined")
    assert "is not defined" not in defined._remote_hint(OSError("Could not connect")) and "reachable" in defined._remote_hint(OSError("x"))

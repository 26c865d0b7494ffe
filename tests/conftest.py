"""Session fixtures: one real PostgreSQL and one real Dovecot (TLS), started once, on loopback.

Airflow is pointed at a throwaway home before anything imports it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_HOME = Path(tempfile.mkdtemp(prefix="imap-intake-test-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    "IMAP_INTAKE_STORAGE_BASE": f"file://{_HOME}/storage",
})
from devstack.airflow_cluster import QUIET_SETTINGS  # noqa: E402 - imports no Airflow

os.environ.update(QUIET_SETTINGS)

from devstack.dovecot import DovecotServer, append_messages  # noqa: E402
from devstack.oauth_server import OAuthServer  # noqa: E402
from devstack.postgres import PostgresServer  # noqa: E402
from devstack.s3 import S3Server  # noqa: E402
from devstack.tls import TlsFiles, make_tls  # noqa: E402
from imap_intake.config import Workspace  # noqa: E402
from imap_intake.imap.settings import ConnectionSettings  # noqa: E402

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's own metadata database (SQLite), migrated once per session."""
    import subprocess

    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer.create()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def oauth_tls() -> Iterator[TlsFiles]:
    """One throwaway CA for Dovecot and the token server: the connections' ca_cert trusts both."""
    import shutil

    root = Path(tempfile.mkdtemp(prefix="imap-intake-tls-"))
    root.chmod(0o755)  # Dovecot's auth process reads the CA to verify the token server
    yield make_tls(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def oauth_server(oauth_tls: TlsFiles) -> Iterator[OAuthServer]:
    """A local OAuth2 authorization server (Entra-, Google- and refresh-token-style) over TLS."""
    server = OAuthServer(Path(tempfile.mkdtemp(prefix="imap-intake-oauth-")), oauth_tls)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot(oauth_tls: TlsFiles, oauth_server: OAuthServer) -> Iterator[DovecotServer]:
    """Dovecot with two login paths: the static password, and XOAUTH2/OAUTHBEARER tokens checked
    against the token server (Dovecot's oauth2 passdb, RFC 7662 introspection)."""
    server = DovecotServer.create(tls_files=oauth_tls, oauth_introspection_url=oauth_server.introspection_url)
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def plain_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot that offers no TLS at all: STARTTLS must fail closed against it."""
    server = DovecotServer.create(tls=False)
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server over HTTP on loopback (tests that kill it or enforce IAM start their own)."""
    server = S3Server.create()
    server.start()
    yield server
    server.destroy()


@pytest.fixture()
def db(postgres: PostgresServer):  # type: ignore[no-untyped-def]
    from imap_intake.store import db as store_db

    connection = store_db.connect_dsn(postgres.dsn)
    store_db.migrate(connection)
    yield connection
    connection.close()


@pytest.fixture()
def unique() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}{next(_counter)}_{secrets.token_hex(3)}"


@pytest.fixture()
def mail_user(dovecot: DovecotServer, unique: Callable[[str], str]) -> str:
    """A fresh mailbox on the shared Dovecot."""
    user = f"{unique('u')}@example.test"
    dovecot.add_user(user)
    return user


def make_settings(server: DovecotServer, user: str, **overrides: object) -> ConnectionSettings:
    assert server.tls_files is not None or overrides.get("encryption") in {"none", "starttls"}
    return server.connection_settings(user, **{"conn_id": "test_imap", "timeout": 10.0, **overrides})


@pytest.fixture()
def settings(dovecot: DovecotServer, mail_user: str) -> ConnectionSettings:
    return make_settings(dovecot, mail_user)


def make_workspace(slug: str, **overrides: object) -> Workspace:
    import datetime as dt

    values: dict[str, object] = {
        "slug": slug, "imap_conn_id": "test_imap", "start_date": dt.date(2026, 1, 1),
        "storage_base": f"file://{_HOME}/storage", "default_supplier": "Default Supplier", "batch_size": 3,
    }
    values.update(overrides)
    return Workspace(**values)  # type: ignore[arg-type]


@pytest.fixture()
def append(dovecot: DovecotServer) -> Callable[..., None]:
    def _append(user: str, messages: list[tuple[bytes, object]], folder: str = "INBOX") -> None:
        append_messages(dovecot, user, messages, folder=folder)

    return _append


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the item (``item.rep_call``): fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report

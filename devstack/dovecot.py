"""A throwaway Dovecot IMAP server on loopback ports, with TLS from ``devstack.tls``.

Two flavours: the normal one offers implicit TLS (imaps) and STARTTLS on the plain
port; ``tls=False`` offers neither, to show that a client refuses to downgrade.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.process import find_binary, free_port, is_root, read_pid, terminate, wait_for_port
from devstack.tls import TlsFiles, make_tls
from imap_intake.imap.settings import ConnectionSettings


class _AnyUser(dict[str, str]):
    """user -> password for a static passdb: the same password for every user name."""

    def __init__(self, password: str) -> None:
        super().__init__()
        self._password = password

    def __missing__(self, key: str) -> str:
        return self._password

    def get(self, key: str, default: object = None) -> str:  # type: ignore[override]
        return self._password


CONFIG = """\
base_dir = {run}
state_dir = {state}
instance_name = imap-intake-{tag}
log_path = {log}
info_log_path = {log}
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechanisms}
mail_location = maildir:~/Maildir
# IDLE learns of other sessions' APPENDs through inotify; where inotify is exhausted (a busy CI machine runs
# many servers) Dovecot polls instead, every 30 s by default: poll every second, as inotify would notice.
mailbox_idle_check_interval = 1 secs
# "* OK Still here" to an idle session (Dovecot's default: every 2 min; the tests' servers: every 2 s, so
# that they see sessions keep waiting through keepalives).
imap_idle_notify_interval = {keepalive} secs
first_valid_uid = 0
first_valid_gid = 0
mail_uid = {uid}
mail_gid = {gid}
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_max_userip_connections = 200
# auth, anvil and stats serve every session at once: room for all of them (Dovecot's default: 1000).
default_client_limit = {client_limit}
passdb {{
  driver = static
  args = password={password}{static_mechanisms}
}}
{oauth_passdb}userdb {{
  driver = static
  args = home={home}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = {imaps_ssl}
  }}
  process_limit = {sessions}
}}
service imap {{
  process_limit = {sessions}
}}
service auth {{
  user = {auth_user}
}}
service auth-worker {{
  user = {auth_user}
}}
service anvil {{
  # A throwaway server that the tests fail logins against on purpose, all from 127.0.0.1: no growing
  # brute-force penalty (the first failure is still delayed 2 s, as everywhere).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    user = {internal_user}
  }}
  unix_listener stats-writer {{
    user = {internal_user}
  }}
}}
"""


@dataclass
class DovecotServer:
    root: Path
    port: int = 0
    tls_port: int = 0
    tls: bool = True
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    tls_files: TlsFiles | None = None
    #: An OAuth2 token server's RFC 7662 endpoint: XOAUTH2 and OAUTHBEARER logins are checked there.
    oauth_introspection_url: str | None = None
    #: IMAP sessions at once (one imap and one imap-login process each): ``make scale-1000`` holds hundreds.
    sessions: int = 200
    #: Seconds between "* OK Still here" keepalives to idle sessions (Dovecot's default 120).
    keepalive: int = 2

    @classmethod
    def create(cls, *, tls: bool = True, password: str | None = None, tls_files: TlsFiles | None = None,
               oauth_introspection_url: str | None = None) -> DovecotServer:
        root = Path(tempfile.mkdtemp(prefix="imap-intake-dovecot-"))
        return cls(root=root, tls=tls, password=password or secrets.token_urlsafe(18), tls_files=tls_files,
                   oauth_introspection_url=oauth_introspection_url)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def pid_path(self) -> Path:
        return self.root / "run" / "master.pid"

    def write_config(self) -> None:
        self.port = self.port or free_port()
        self.tls_port = self.tls_port or free_port()
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        me = pwd.getpwuid(os.geteuid())
        if is_root():
            # Dovecot refuses mail access as root: mail processes run as nobody, which is
            # why the whole server lives in a world-traversable temporary directory.
            login_user, internal_user, auth_user = "dovenull", "dovecot", "root"
            me = pwd.getpwnam("nobody")
            os.chown(self.root / "home", me.pw_uid, me.pw_gid)
            self.root.chmod(0o755)
        else:
            login_user = internal_user = auth_user = me.pw_name
        ssl_files = ""
        if self.tls:
            self.tls_files = self.tls_files or make_tls(self.root / "tls")
            ssl_files = (
                f"ssl_cert = <{self.tls_files.server_cert}\nssl_key = <{self.tls_files.server_key}\n"
                "ssl_min_protocol = TLSv1.2"
            )
        oauth_mechanisms = static_mechanisms = oauth_passdb = ""
        if self.oauth_introspection_url:
            assert self.tls_files is not None, "the token server's certificate comes from the same CA"
            oauth_conf = self.root / "dovecot-oauth2.conf.ext"
            oauth_conf.write_text(
                f"introspection_mode = post\nintrospection_url = {self.oauth_introspection_url}\n"
                f"username_attribute = username\nactive_attribute = active\nactive_value = true\n"
                f"force_introspection = yes\ntls_ca_cert_file = {self.tls_files.ca_cert}\n"
            )
            oauth_mechanisms = " xoauth2 oauthbearer"
            static_mechanisms = "\n  mechanisms = plain login"
            oauth_passdb = f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {oauth_conf}\n}}\n"
        self.config_path.write_text(
            CONFIG.format(
                oauth_mechanisms=oauth_mechanisms, static_mechanisms=static_mechanisms, oauth_passdb=oauth_passdb,
                run=self.root / "run", state=self.root / "state", log=self.root / "dovecot.log",
                tag=self.root.name, ssl="yes" if self.tls else "no", ssl_files=ssl_files,
                uid=me.pw_uid, gid=me.pw_gid, login_user=login_user, internal_user=internal_user,
                auth_user=auth_user, password=self.password, home=self.root / "home",
                port=self.port, tls_port=self.tls_port, imaps_ssl="yes" if self.tls else "no", sessions=self.sessions, client_limit=max(1000, 3 * self.sessions), keepalive=self.keepalive,
            )
        )
        self.config_path.chmod(0o600)

    @property
    def users(self) -> dict[str, str]:
        return _AnyUser(self.password)

    def add_user(self, user: str) -> str:
        """Every user name logs in with the server's one password (a static passdb: a passwd-file
        is re-read at most once a second, too slow for tests that add users as they go)."""
        return self.password

    def connection_settings(self, user: str, **overrides: Any) -> ConnectionSettings:
        """Settings to log in to this server as ``user``: implicit TLS, validated against its own CA."""
        values: dict[str, Any] = {
            "conn_id": "devstack", "host": "127.0.0.1", "port": self.tls_port, "username": user,
            "password": self.password, "encryption": "tls",
            "ca_cert": self.tls_files.ca_pem if self.tls_files else None, "timeout": 30.0,
        }
        values.update(overrides)
        return ConnectionSettings(**values)

    def start(self) -> None:
        self.write_config()
        subprocess.run(
            [find_binary("dovecot", ["/usr/sbin"]), "-c", str(self.config_path)],
            # The daemon keeps inherited pipes open: never capture its output.
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        wait_for_port(self.tls_port)

    def pid(self) -> int | None:
        return read_pid(self.pid_path)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, grace=15, kill=False)


def append_messages(server: DovecotServer, user: str, messages: list[tuple[bytes, object]], *, folder: str = "INBOX", batch: int = 100) -> None:
    """APPEND messages (raw bytes, INTERNALDATE) with MULTIAPPEND batches, over TLS as the user."""
    import ssl

    from imapclient import IMAPClient

    assert server.tls_files is not None
    context = ssl.create_default_context(cafile=str(server.tls_files.ca_cert))
    with IMAPClient("127.0.0.1", server.tls_port, ssl=True, ssl_context=context) as client:
        client.login(user, server.users[user])
        if not client.folder_exists(folder):
            client.create_folder(folder)
        for start in range(0, len(messages), batch):
            chunk = messages[start : start + batch]
            client.multiappend(folder, [{"msg": raw, "date": date} if date else raw for raw, date in chunk])


def flags(server: DovecotServer, user: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
    """UID -> flags of every message in ``folder``, read with EXAMINE (changes nothing)."""
    import ssl

    from imapclient import IMAPClient

    assert server.tls_files is not None
    context = ssl.create_default_context(cafile=str(server.tls_files.ca_cert))
    with IMAPClient("127.0.0.1", server.tls_port, ssl=True, ssl_context=context) as client:
        client.login(user, server.users[user])
        client.select_folder(folder, readonly=True)
        return {uid: tuple(sorted(v[b"FLAGS"])) for uid, v in client.fetch(client.search(["ALL"]), ["FLAGS"]).items()}

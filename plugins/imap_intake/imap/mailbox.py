"""The mailbox seam over imapclient: connect safely, EXAMINE, UID SEARCH, FETCH BODY.PEEK.

This is the only module that speaks IMAP. It never sends STORE, EXPUNGE, MOVE, COPY,
DELETE or any flag change: folders are opened read-only (EXAMINE) and bodies are fetched
with BODY.PEEK, so not even ``\\Seen`` changes. Third-party errors become our own here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import imaplib
import logging
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError
from imapclient.imapclient import SocketTimeout

from imap_intake.auth.explain import explain_imap_rejection
from imap_intake.auth.tokens import token_source
from imap_intake.exceptions import (
    AuthenticationFailed,
    FolderNotFound,
    MailboxError,
    MailboxUnreachable,
    TlsError,
)
from imap_intake.imap.settings import ConnectionSettings

log = logging.getLogger(__name__)
TOKEN_RENEW_MARGIN = dt.timedelta(seconds=60)
#: Where a server has no IDLE, how often a waiting session asks with NOOP.
NOOP_SECONDS = 30.0

#: Commands this project may send. Anything else is a bug (see tests/imap/test_mailbox.py).
OUTLINE_HEADERS = "BODY.PEEK[HEADER.FIELDS (FROM TO CC DELIVERED-TO X-ORIGINAL-TO)]"
READ_ONLY_COMMANDS = frozenset(
    {"CAPABILITY", "LOGIN", "AUTHENTICATE", "STARTTLS", "EXAMINE", "UID", "LIST", "LOGOUT", "NOOP", "ID", "IDLE"}
)


@dataclass(frozen=True)
class FolderState:
    name: str
    uidvalidity: int
    uidnext: int
    exists: int


@dataclass(frozen=True)
class SignIn:
    """How a session logged in: LOGIN, OAUTHBEARER or XOAUTH2, and when its token expires."""

    mechanism: str
    token_expires_at: dt.datetime | None


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    internal_date: dt.datetime
    raw: bytes


@dataclass(frozen=True)
class MessageMeta:
    uid: int
    internal_date: dt.datetime
    size: int


def fingerprint_of(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _ssl_context(settings: ConnectionSettings) -> ssl.SSLContext:
    if settings.cert_fingerprint or not settings.validate_certificate:
        # A pin replaces chain validation; it is checked before the password is sent.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=settings.ca_cert) if settings.ca_cert else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Mailbox:
    """One logged-in IMAP session. Use ``Mailbox.open(settings)`` as a context manager."""

    def __init__(self, client: IMAPClient, settings: ConnectionSettings, signed_in: SignIn | None = None) -> None:
        self._client = client
        self.settings = settings
        self.folder: FolderState | None = None
        self.signed_in = signed_in or SignIn("LOGIN", None)
        self.renewals = 0  # sessions opened again because the OAuth2 token was about to expire

    # -- connecting ---------------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def open(cls, settings: ConnectionSettings) -> Iterator[Mailbox]:
        mailbox = cls._opened(settings)
        try:
            yield mailbox
        finally:
            mailbox.close()

    @classmethod
    def _opened(cls, settings: ConnectionSettings) -> Mailbox:
        client, signed_in = cls._connect(settings)
        return cls(client, settings, signed_in)

    @classmethod
    def _connect(cls, settings: ConnectionSettings) -> tuple[IMAPClient, SignIn]:
        """A logged-in client, and how it signed in."""
        where = settings.describe
        context = _ssl_context(settings)
        timeout = SocketTimeout(connect=settings.timeout, read=settings.timeout)
        try:
            client = IMAPClient(
                settings.host, port=settings.port, ssl=settings.encryption == "tls",
                ssl_context=context, timeout=timeout,
            )
        except socket.gaierror as exc:
            raise MailboxUnreachable(
                f"{where}: cannot resolve host '{settings.host}': check the host name "
                f"(for {settings.preset.label} it is '{settings.preset.host or 'your provider’s IMAP host'}')"
            ) from exc
        except ConnectionRefusedError as exc:
            raise MailboxUnreachable(cls._refused_message(settings)) from exc
        except ssl.SSLCertVerificationError as exc:
            raise TlsError(cls._certificate_message(settings, exc)) from exc
        except ssl.SSLError as exc:
            raise TlsError(
                f"{where}: TLS handshake failed ({exc.reason or exc}): the server answered without TLS, "
                f"so port {settings.port} is probably a STARTTLS or plaintext port; set encryption=starttls, "
                "or use port 993 with encryption=tls"
            ) from exc
        except TimeoutError as exc:
            raise cls._timeout_error(settings) from exc
        except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError) as exc:
            raise MailboxUnreachable(f"{where}: connection failed: {exc}") from exc
        # imapclient turns imaplib's debug output on: every command and fetched body formatted for a
        # DEBUG logger (whole messages in task logs, and time spent formatting them). Off.
        client._imap.debug = 0
        try:
            if settings.encryption == "starttls":
                try:
                    client.starttls(context)
                except CapabilityError as exc:
                    raise TlsError(
                        f"{where}: the server does not offer STARTTLS, so the password would travel in "
                        "plaintext; refusing. Use port 993 with encryption=tls, or ask the mail admin to "
                        "enable STARTTLS"
                    ) from exc
                except ssl.SSLCertVerificationError as exc:
                    raise TlsError(cls._certificate_message(settings, exc)) from exc
            if settings.cert_fingerprint:
                cls._check_pin(client, settings)
            signed_in = cls._login(client, settings)
        except BaseException:
            cls._quietly_close(client)
            raise
        return client, signed_in

    @classmethod
    def _login(cls, client: IMAPClient, settings: ConnectionSettings) -> SignIn:
        where = settings.describe
        if settings.oauth is None:
            try:
                client.login(settings.username, settings.password)
            except LoginError as exc:
                raise AuthenticationFailed(
                    f"{where}: the server rejected the login for '{settings.username}'. "
                    f"{settings.preset.login_hint} Not retried: repeated bad logins lock accounts"
                ) from exc
            return SignIn("LOGIN", None)
        source = token_source(settings)
        issued = source.issued
        token = source.token()
        rejected = (LoginError, IMAPClientError, imaplib.IMAP4.error)
        try:
            mechanism = cls._authenticate(client, settings, token.value)
        except rejected as exc:
            if source.issued != issued:  # a token just issued: asking again would not change the answer
                raise cls._token_rejected(settings) from exc
            token = source.token(refresh=True)  # a cached token the server no longer takes: one fresh try
            try:
                mechanism = cls._authenticate(client, settings, token.value)
            except rejected as again:
                raise cls._token_rejected(settings) from again
        return SignIn(mechanism, token.expires_at)

    @staticmethod
    def _token_rejected(settings: ConnectionSettings) -> AuthenticationFailed:
        assert settings.oauth is not None
        text = explain_imap_rejection(settings.oauth.kind, settings.username, settings.oauth.client_id)
        return AuthenticationFailed(f"{settings.describe}: {text}. Not retried")

    @staticmethod
    def _authenticate(client: IMAPClient, settings: ConnectionSettings, token: str) -> str:
        """OAUTHBEARER (RFC 7628) where offered, else XOAUTH2 (Gmail, Microsoft); returns which."""
        if b"AUTH=OAUTHBEARER" in client.capabilities():
            client.oauthbearer_login(settings.username, token)
            return "OAUTHBEARER"
        client.oauth2_login(settings.username, token)
        return "XOAUTH2"

    @staticmethod
    def _refused_message(settings: ConnectionSettings) -> str:
        message = (
            f"{settings.describe}: connection refused: nothing listens on {settings.host}:{settings.port}; "
            "check host, port and firewall"
        )
        if settings.provider == "proton_bridge":
            message += (
                "; Proton Bridge must be running and reachable from the Airflow workers "
                "(Bridge listens on 127.0.0.1:1143 of the machine it runs on)"
            )
        return message

    @staticmethod
    def _timeout_error(settings: ConnectionSettings) -> MailboxError:
        try:
            with socket.create_connection((settings.host, settings.port), timeout=min(settings.timeout, 5)):
                pass
        except OSError:
            return MailboxUnreachable(
                f"{settings.describe}: timed out connecting to {settings.host}:{settings.port} after "
                f"{settings.timeout:.0f}s: a firewall drops the traffic or the host is down; check host and port"
            )
        if settings.encryption != "tls":
            return TlsError(
                f"{settings.describe}: port {settings.port} accepted the connection but sent no IMAP greeting "
                f"within {settings.timeout:.0f}s: it probably expects implicit TLS; set encryption=tls "
                "(usual port 993)"
            )
        return MailboxUnreachable(
            f"{settings.describe}: the server accepted the connection but did not answer within "
            f"{settings.timeout:.0f}s; it may be overloaded, try again or raise the timeout"
        )

    @staticmethod
    def _certificate_message(settings: ConnectionSettings, exc: ssl.SSLCertVerificationError) -> str:
        reason = exc.verify_message or str(exc)
        base = f"{settings.describe}: the server certificate was rejected ({reason})"
        if "mismatch" in reason.lower() or "hostname" in reason.lower():
            return (
                f"{base}: it is not valid for '{settings.host}'. Connect with the host name on the "
                "certificate, or pin the certificate with cert_fingerprint"
            )
        return (
            f"{base}: it is self-signed or signed by an unknown CA. Put the CA in the connection's "
            "ca_cert field (PEM), or pin the certificate's SHA-256 in cert_fingerprint "
            "(for Proton Bridge: export the certificate from Bridge's settings)"
        )

    @staticmethod
    def _check_pin(client: IMAPClient, settings: ConnectionSettings) -> None:
        der = client.socket().getpeercert(binary_form=True)  # type: ignore[union-attr]
        actual = fingerprint_of(der or b"")
        if actual != settings.cert_fingerprint:
            raise TlsError(
                f"{settings.describe}: the server certificate's SHA-256 fingerprint is {actual}, "
                f"not the pinned {settings.cert_fingerprint}. If the certificate was renewed on purpose, "
                "update cert_fingerprint; otherwise something is intercepting the connection"
            )

    @staticmethod
    def _quietly_close(client: IMAPClient) -> None:
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001 - best effort while another error propagates
            log.debug("closing a failed IMAP connection raised", exc_info=True)

    def close(self) -> None:
        try:
            self._client.logout()
        except Exception:  # noqa: BLE001 - the server may already have gone
            self._quietly_close(self._client)

    # -- reading --------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        where = f"{self.settings.describe}, folder '{self.folder.name if self.folder else self.settings.folder}'"
        try:
            yield
        except MailboxError:
            raise
        except TimeoutError as exc:
            raise MailboxUnreachable(f"{where}: timed out while {doing}; will retry") from exc
        except (imaplib.IMAP4.abort, ConnectionError, ssl.SSLError, OSError) as exc:
            raise MailboxUnreachable(f"{where}: connection lost while {doing} ({exc}); will retry") from exc
        except (IMAPClientError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"{where}: the server refused {doing}: {exc}") from exc

    @property
    def capabilities(self) -> tuple[str, ...]:
        with self._errors("reading capabilities"):
            return tuple(c.decode() if isinstance(c, bytes) else str(c) for c in self._client.capabilities())

    def list_folders(self) -> tuple[str, ...]:
        return tuple(name for name, _flags in self.folders_with_flags())

    def folders_with_flags(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(name, flags) of every folder LIST shows: \\Noselect, and special-use flags such as \\All or \\Trash."""
        with self._errors("listing folders"):
            return tuple((str(name), tuple(f.decode() if isinstance(f, bytes) else str(f) for f in flags))
                         for flags, _delim, name in self._client.list_folders())

    def outlines(self, uids: Sequence[int]) -> dict[int, dict[bytes, Any]]:
        """Structure, size, date (UTC, as ``metadata`` gives it) and address headers of messages: no body
        downloaded, no flag changed (BODY.PEEK). For ``imap_intake.survey``."""
        if not uids:
            return {}
        with self._errors(f"reading the structure of {len(uids)} messages"):
            data = self._client.fetch(list(uids), ["INTERNALDATE", "RFC822.SIZE", "BODYSTRUCTURE", OUTLINE_HEADERS])
        return {uid: {**item, b"INTERNALDATE": _utc(item[b"INTERNALDATE"])} for uid, item in data.items()}

    def examine(self, folder: str | None = None) -> FolderState:
        """Open ``folder`` read-only (EXAMINE)."""
        name = folder or self.settings.folder
        try:
            with self._errors(f"opening '{name}'"):
                info = self._client.select_folder(name, readonly=True)
        except MailboxError as exc:
            if not isinstance(exc.__cause__, (IMAPClientError, imaplib.IMAP4.error)) or isinstance(
                exc, MailboxUnreachable
            ):
                raise
            raise self._missing_folder(name) from exc
        uidvalidity = int(info.get(b"UIDVALIDITY", 0))
        uidnext = int(info.get(b"UIDNEXT", 0))
        exists = int(info.get(b"EXISTS", 0))
        if not uidnext:
            with self._errors("reading UIDNEXT"):
                status = self._client.folder_status(name, [b"UIDNEXT"])
            uidnext = int(status.get(b"UIDNEXT", 0))
        self.folder = FolderState(name=name, uidvalidity=uidvalidity, uidnext=uidnext, exists=exists)
        return self.folder

    def status(self, folder: str | None = None) -> tuple[int, int]:
        """(UIDVALIDITY, UIDNEXT) of a folder by STATUS, without opening it: the idle check's one question."""
        name = folder or self.settings.folder
        try:
            with self._errors(f"reading the status of '{name}'"):
                found = self._client.folder_status(name, [b"UIDVALIDITY", b"UIDNEXT"])
        except MailboxError as exc:
            if isinstance(exc, MailboxUnreachable):
                raise
            raise self._missing_folder(name) from exc
        return int(found.get(b"UIDVALIDITY", 0)), int(found.get(b"UIDNEXT", 0))

    def _missing_folder(self, name: str) -> FolderNotFound:
        import difflib

        existing = self.list_folders()
        close = difflib.get_close_matches(name, existing, n=1, cutoff=0.4)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return FolderNotFound(
            f"{self.settings.describe}: folder '{name}' does not exist. Folders here: "
            f"{', '.join(existing) or '(none)'}{hint} Set the connection's or workspace's folder",
            existing=existing,
        )

    def uids_above(self, last_uid: int) -> list[int]:
        """UIDs greater than ``last_uid``. ``N:*`` always matches the last message, so filter."""
        with self._errors(f"searching UIDs above {last_uid}"):
            found = self._client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def uids_between(self, since: dt.date | None, before: dt.date | None) -> list[int]:
        """UIDs whose INTERNALDATE date is in [since, before) (server dates; filter exactly later)."""
        criteria: list[object] = []
        if since:
            criteria += ["SINCE", since]
        if before:
            criteria += ["BEFORE", before]
        with self._errors("searching by date"):
            found = self._client.search(criteria or ["ALL"])
        return sorted(found)

    def renew_if_expiring(self, margin: dt.timedelta = TOKEN_RENEW_MARGIN) -> None:
        """Sign in anew before an OAuth2 token runs out: providers end sessions whose token
        expired (Exchange Online does), so a long first sync renews between fetches."""
        expires_at = self.signed_in.token_expires_at
        if expires_at is None or dt.datetime.now(dt.UTC) + margin < expires_at:
            return
        folder = self.folder
        old = self._client
        self._client, self.signed_in = self._connect(self.settings)
        self.renewals += 1
        self._quietly_close(old)
        log.info("%s: OAuth2 token about to expire: signed in again with a fresh one", self.settings.describe)
        if folder is not None:
            state = self.examine(folder.name)
            if state.uidvalidity != folder.uidvalidity:
                raise MailboxUnreachable(
                    f"{self.settings.describe}, folder '{folder.name}': UIDVALIDITY changed from {folder.uidvalidity} to "
                    f"{state.uidvalidity} during the poll; will retry"
                )

    def metadata(self, uids: Sequence[int]) -> list[MessageMeta]:
        if not uids:
            return []
        self.renew_if_expiring()
        with self._errors(f"fetching sizes of {len(uids)} messages"):
            data = self._client.fetch(list(uids), ["INTERNALDATE", "RFC822.SIZE"])
        return [
            MessageMeta(uid=uid, internal_date=_utc(item[b"INTERNALDATE"]), size=int(item[b"RFC822.SIZE"]))
            for uid, item in sorted(data.items())
        ]

    def bodies(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """Whole messages by BODY.PEEK[] (never sets \\Seen)."""
        if not uids:
            return []
        self.renew_if_expiring()
        with self._errors(f"fetching {len(uids)} messages (UIDs {min(uids)}-{max(uids)})"):
            data = self._client.fetch(list(uids), ["BODY.PEEK[]", "INTERNALDATE"])
        return [
            FetchedMessage(uid=uid, internal_date=_utc(item[b"INTERNALDATE"]), raw=bytes(item[b"BODY[]"]))
            for uid, item in sorted(data.items())
            if b"BODY[]" in item
        ]

    def wait_for_mail(self, seconds: float) -> bool:
        """Block up to ``seconds`` for the server to announce mail in the examined folder: IDLE
        (RFC 2177) where offered, ended with DONE before returning; else a NOOP after the wait (at most NOOP_SECONDS).
        True when the server said EXISTS or RECENT (callers still check UIDs themselves). Other
        untagged responses during IDLE (a server's "* OK Still here" keepalive, flag changes,
        expunges) do not end the wait: an idle session costs one round trip per ``seconds``."""
        with self._errors("waiting for new mail"):
            if b"IDLE" in self._client.capabilities():
                deadline = time.monotonic() + seconds
                self._client.idle()
                responses: list[Any] = []
                try:
                    while (left := deadline - time.monotonic()) > 0:
                        batch = self._client.idle_check(timeout=left)
                        responses += batch
                        if not batch or _announces_mail(batch):  # nothing: the time is up, or the server hung up
                            break
                finally:
                    responses += list(self._client.idle_done()[1])
            else:  # no IDLE: a NOOP at most every NOOP_SECONDS, as mail clients poll
                time.sleep(min(seconds, NOOP_SECONDS))
                responses = list(self._client.noop()[1])
        return _announces_mail(responses)

    def interrupt(self) -> None:
        """From another thread: end a ``wait_for_mail`` now by shutting the connection down."""
        try:
            self._client.socket().shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def flags(self, uids: Sequence[int]) -> dict[int, tuple[bytes, ...]]:
        with self._errors("reading flags"):
            data = self._client.fetch(list(uids), ["FLAGS"])
        return {uid: tuple(item[b"FLAGS"]) for uid, item in data.items()}


def _announces_mail(responses: Sequence[Any]) -> bool:
    """Whether untagged responses include ``n EXISTS`` or ``n RECENT``."""
    return any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)

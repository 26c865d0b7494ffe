"""The connection against a real Dovecot: every secure mode connects, every mistake gets its diagnosis."""

from __future__ import annotations

import imaplib
import socket

import pytest

from devstack.dovecot import DovecotServer
from devstack.process import free_port
from devstack.samples import message
from imap_intake.exceptions import AuthenticationFailed, FolderNotFound, MailboxUnreachable, TlsError
from imap_intake.imap.diagnose import diagnose
from imap_intake.imap.mailbox import READ_ONLY_COMMANDS, Mailbox
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def test_implicit_tls_with_ca_validation_connects(dovecot: DovecotServer, mail_user: str) -> None:
    with Mailbox.open(make_settings(dovecot, mail_user)) as mailbox:
        state = mailbox.examine()
    assert state.name == "INBOX" and state.uidvalidity > 0 and state.uidnext >= 1


def test_starttls_connects(dovecot: DovecotServer, mail_user: str) -> None:
    with Mailbox.open(make_settings(dovecot, mail_user, port=dovecot.port, encryption="starttls")) as mailbox:
        assert "IMAP4REV1" in mailbox.capabilities


def test_fingerprint_pin_connects_without_ca(dovecot: DovecotServer, mail_user: str) -> None:
    assert dovecot.tls_files is not None
    pin = dovecot.tls_files.server_fingerprint()
    with Mailbox.open(make_settings(dovecot, mail_user, ca_cert=None, cert_fingerprint=pin)) as mailbox:
        assert mailbox.examine().name == "INBOX"


def test_plaintext_on_loopback_connects(dovecot: DovecotServer, mail_user: str) -> None:
    with Mailbox.open(make_settings(dovecot, mail_user, port=dovecot.port, encryption="none")) as mailbox:
        assert mailbox.examine().exists == 0


def test_unknown_ca_is_rejected_with_the_fix(dovecot: DovecotServer, mail_user: str) -> None:
    with pytest.raises(TlsError, match="self-signed or signed by an unknown CA.*ca_cert.*cert_fingerprint"):
        Mailbox.open(make_settings(dovecot, mail_user, ca_cert=None)).__enter__()


def test_wrong_pin_is_rejected_before_login(dovecot: DovecotServer, mail_user: str) -> None:
    wrong = ":".join(["AB"] * 32)
    with pytest.raises(TlsError, match="not the pinned AB:AB"):
        Mailbox.open(make_settings(dovecot, mail_user, ca_cert=None, cert_fingerprint=wrong)).__enter__()


def test_name_mismatch_is_explained(dovecot: DovecotServer, mail_user: str) -> None:
    with pytest.raises(TlsError, match="not valid for 'localhost'"):
        Mailbox.open(make_settings(dovecot, mail_user, host="localhost")).__enter__()


def test_wrong_password_says_app_password(dovecot: DovecotServer, mail_user: str) -> None:
    settings = make_settings(dovecot, mail_user, password="not-the-password-123", provider="gmail")
    with pytest.raises(AuthenticationFailed, match="rejected the login.*app password.*Not retried") as info:
        Mailbox.open(settings).__enter__()
    assert "not-the-password-123" not in str(info.value)
    assert not info.value.retryable


def test_missing_folder_lists_folders_and_closest_match(dovecot: DovecotServer, mail_user: str) -> None:
    with Mailbox.open(make_settings(dovecot, mail_user)) as mailbox:
        with pytest.raises(FolderNotFound, match="folder 'INBX' does not exist.*INBOX.*did you mean 'INBOX'"):
            mailbox.examine("INBX")


def test_implicit_tls_against_plain_port_says_use_starttls(dovecot: DovecotServer, mail_user: str) -> None:
    with pytest.raises(TlsError, match="STARTTLS or plaintext port; set encryption=starttls"):
        Mailbox.open(make_settings(dovecot, mail_user, port=dovecot.port)).__enter__()


def test_starttls_against_tls_port_says_use_tls(dovecot: DovecotServer, mail_user: str) -> None:
    settings = make_settings(dovecot, mail_user, encryption="starttls", timeout=1.5)
    with pytest.raises(TlsError, match="expects implicit TLS; set encryption=tls"):
        Mailbox.open(settings).__enter__()


def test_closed_port_is_refused(dovecot: DovecotServer, mail_user: str) -> None:
    with pytest.raises(MailboxUnreachable, match="connection refused.*check host, port and firewall") as info:
        Mailbox.open(make_settings(dovecot, mail_user, port=free_port())).__enter__()
    assert info.value.retryable


def test_closed_port_for_proton_bridge_mentions_bridge(dovecot: DovecotServer, mail_user: str) -> None:
    settings = make_settings(dovecot, mail_user, port=free_port(), provider="proton_bridge", encryption="starttls")
    with pytest.raises(MailboxUnreachable, match="Proton Bridge must be running"):
        Mailbox.open(settings).__enter__()


def test_unknown_host_is_a_dns_failure(dovecot: DovecotServer, mail_user: str) -> None:
    with pytest.raises(MailboxUnreachable, match="cannot resolve host 'imap.nonexistent.invalid'"):
        Mailbox.open(make_settings(dovecot, mail_user, host="imap.nonexistent.invalid")).__enter__()


def test_starttls_fails_closed_when_not_offered(plain_dovecot: DovecotServer) -> None:
    plain_dovecot.add_user("plain@example.test")
    settings = make_settings(plain_dovecot, "plain@example.test", port=plain_dovecot.port, encryption="starttls", ca_cert=None)
    with pytest.raises(TlsError, match="does not offer STARTTLS.*refusing"):
        Mailbox.open(settings).__enter__()


def test_diagnosis_on_success_names_folder_count_and_capabilities(dovecot: DovecotServer, mail_user: str, append) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(message(sender="a@b.example", to=mail_user, subject="x").as_bytes(), None)])
    result = diagnose(make_settings(dovecot, mail_user))
    assert result.ok
    assert "folder 'INBOX' opened read-only: 1 messages" in result.message
    assert "IDLE offered" in result.message and "CONDSTORE offered" in result.message


def test_diagnosis_on_failure_adds_port_hint(dovecot: DovecotServer, mail_user: str) -> None:
    result = diagnose(make_settings(dovecot, mail_user, password="wrong-password-xyz"))
    assert not result.ok and "rejected the login" in result.message


def test_reading_sends_only_read_only_commands(dovecot: DovecotServer, mail_user: str, append, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(message(sender="a@b.example", to=mail_user, subject=f"m{i}").as_bytes(), None) for i in range(3)])
    sent: list[str] = []
    original = imaplib.IMAP4._command

    def spy(self, name, *args):  # type: ignore[no-untyped-def]
        sent.append(name.upper() if name.upper() != "UID" else f"UID {args[0].upper()}")
        return original(self, name, *args)

    monkeypatch.setattr(imaplib.IMAP4, "_command", spy)
    with Mailbox.open(make_settings(dovecot, mail_user)) as mailbox:
        state = mailbox.examine()
        uids = mailbox.uids_above(0)
        before = mailbox.flags(uids)
        mailbox.metadata(uids)
        mailbox.bodies(uids)
        after = mailbox.flags(uids)
    assert state.exists == 3 and len(uids) == 3
    assert before == after and all(b"\\Seen" not in flags for flags in after.values())
    assert {c.split()[0] for c in sent} <= READ_ONLY_COMMANDS
    assert not {"STORE", "EXPUNGE", "MOVE", "COPY", "DELETE", "SELECT"} & {w for c in sent for w in c.split()}


def test_uids_above_ignores_the_star_quirk(dovecot: DovecotServer, mail_user: str, append) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(message(sender="a@b.example", to=mail_user, subject="only").as_bytes(), None)])
    with Mailbox.open(make_settings(dovecot, mail_user)) as mailbox:
        mailbox.examine()
        assert mailbox.uids_above(5) == []  # "6:*" matches the last message on the server


def test_socket_timeout_type_is_translated(dovecot: DovecotServer, mail_user: str) -> None:
    # A listener that accepts and never speaks: implicit TLS handshake stalls until the timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(MailboxUnreachable, match="did not answer within"):
            Mailbox.open(make_settings(dovecot, mail_user, port=port, timeout=1.0)).__enter__()

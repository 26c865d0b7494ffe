"""The one error tree of imap-intake.

    ImapIntakeError                 base of everything we raise on purpose
    ├── ConfigError                 a workspace file or connection field is wrong (fix the config)
    ├── CredentialError             an encrypted password cannot be opened (key id, tamper, missing key)
    ├── MailboxError                talking to the mail server failed
    │   ├── MailboxUnreachable      DNS, refused, timed out, dropped (transient: retried)
    │   │   └── TokenEndpointUnreachable   the OAuth2 token endpoint did not answer (transient: retried)
    │   ├── TlsError                certificate, pin, wrong TLS mode, no STARTTLS (not retried)
    │   ├── AuthenticationFailed    login rejected (never retried: retries lock accounts)
    │   │   └── TokenRefused        the identity provider issued no token: secret, tenant, consent, revoked grant
    │   └── FolderNotFound          the folder does not exist (not retried)
    ├── StorageError                attachment bytes could not be written or read
    └── OrderParseError             one attachment is not a readable order (recorded, never fatal)

Every message names the connection, folder, UID or file it is about and what to do next.
Third-party errors are translated where they happen, with ``raise ... from``.
"""

from __future__ import annotations


class ImapIntakeError(Exception):
    """Base of every error imap-intake raises on purpose."""

    #: Whether a scheduler should try again (Airflow retries only these).
    retryable = False


class ConfigError(ImapIntakeError):
    """A workspace file or a connection field is invalid."""


class CredentialError(ImapIntakeError):
    """An encrypted password could not be decrypted or encrypted."""


class MailboxError(ImapIntakeError):
    """The IMAP server could not be used."""


class MailboxUnreachable(MailboxError):
    """The server could not be reached or dropped the connection."""

    retryable = True


class TokenEndpointUnreachable(MailboxUnreachable):
    """The OAuth2 token endpoint could not be reached or answered with a server error."""


class TlsError(MailboxError):
    """TLS could not be established safely."""


class AuthenticationFailed(MailboxError):
    """The server rejected the login."""


class TokenRefused(AuthenticationFailed):
    """The identity provider refused to issue an access token."""


class FolderNotFound(MailboxError):
    """The configured folder does not exist."""

    def __init__(self, message: str, *, existing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.existing = existing


class StorageError(ImapIntakeError):
    """Attachment bytes could not be written or read."""

    retryable = True


class OrderParseError(ImapIntakeError):
    """An attachment is not a readable purchase order."""

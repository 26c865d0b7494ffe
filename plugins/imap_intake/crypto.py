"""AES-256-GCM envelopes for mailbox passwords, with a key ring for rotation.

Envelope: ``aesgcm:v1:<key id>:<base64 nonce>:<base64 ciphertext+tag>``. The nonce is 96
random bits. The associated data binds the envelope to the mailbox it signs in to
(``mailbox:<login>@<host>``), so an envelope copied to another mailbox does not open, while the
UI's Test connection (which runs under a temporary connection id) opens it. Envelopes made by
earlier versions are bound to the connection id; they still open, and ``rotate-password``
rebinds them. Keys come from the environment (``IMAP_INTAKE_KEYS``), never the repo.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from imap_intake.exceptions import CredentialError

PREFIX = "aesgcm:v1:"
KEYS_VARIABLE = "IMAP_INTAKE_KEYS"
ACTIVE_VARIABLE = "IMAP_INTAKE_ACTIVE_KEY"
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def is_envelope(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PREFIX)


def generate_key() -> str:
    """A new random 256-bit key, base64."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _b64(text: str, what: str, key_id: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CredentialError(f"encrypted password under key '{key_id}': the {what} is not valid base64") from exc


@dataclass(frozen=True)
class KeyRing:
    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing:
        """Parse ``IMAP_INTAKE_KEYS="id1:base64key,id2:base64key"``; the active key signs new envelopes."""
        env = os.environ if environ is None else environ
        spec = env.get(KEYS_VARIABLE, "").strip()
        if not spec:
            raise CredentialError(
                f"no encryption keys: set {KEYS_VARIABLE}='key-id:<base64 32-byte key>' "
                "(make one with 'imap-intake generate-key') in the environment or secrets backend"
            )
        keys: dict[str, bytes] = {}
        for item in spec.split(","):
            key_id, sep, encoded = item.strip().partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise CredentialError(f"{KEYS_VARIABLE}: each entry must be 'key-id:base64key' (key id letters, digits, _.-)")
            raw = _b64(encoded, "key", key_id)
            if len(raw) != 32:
                raise CredentialError(f"{KEYS_VARIABLE}: key '{key_id}' is {len(raw)} bytes; AES-256 needs 32")
            keys[key_id] = raw
        active = env.get(ACTIVE_VARIABLE) or next(reversed(keys))
        if active not in keys:
            raise CredentialError(f"{ACTIVE_VARIABLE}={active!r} names no key in {KEYS_VARIABLE}")
        return cls(keys=keys, active=active)

    def encrypt(self, plaintext: str, *, conn_id: str | None = None, mailbox: str | None = None) -> str:
        """Seal ``plaintext`` for a mailbox (``login@host``; preferred) or, as before, a connection id."""
        if not (mailbox or conn_id):
            raise CredentialError("an envelope is bound to a mailbox (login@host) or a connection id: give one")
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.active]).encrypt(nonce, plaintext.encode(), _bound_to(conn_id, mailbox))
        return f"{PREFIX}{self.active}:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"

    def decrypt(self, envelope: str, *, conn_id: str, mailbox: str | None = None) -> str:
        """Open an envelope bound to ``mailbox`` or (made by earlier versions) to ``conn_id``."""
        if not is_envelope(envelope):
            raise CredentialError(f"connection '{conn_id}': the password is not an {PREFIX} envelope")
        parts = envelope[len(PREFIX):].split(":")
        if len(parts) != 3:
            raise CredentialError(f"connection '{conn_id}': the encrypted password is malformed (expected key id, nonce, ciphertext)")
        key_id, nonce_b64, sealed_b64 = parts
        key = self.keys.get(key_id)
        if key is None:
            raise CredentialError(
                f"connection '{conn_id}': the password was encrypted with key '{key_id}', which is not in "
                f"{KEYS_VARIABLE}; add that key (keep old keys until every password is rotated)"
            )
        nonce = _b64(nonce_b64, "nonce", key_id)
        sealed = _b64(sealed_b64, "ciphertext", key_id)
        if len(nonce) != 12:
            raise CredentialError(f"connection '{conn_id}': the nonce under key '{key_id}' is not 96 bits")
        for binding in ([_bound_to(None, mailbox)] if mailbox else []) + [conn_id.encode()]:
            try:
                return AESGCM(key).decrypt(nonce, sealed, binding).decode()
            except InvalidTag:
                continue
        fix = f"--mailbox {mailbox}" if mailbox else f"--conn-id {conn_id}"
        raise CredentialError(
            f"connection '{conn_id}': the encrypted password does not open with key '{key_id}': wrong key, tampered "
            f"envelope, or an envelope made for another mailbox; re-run 'imap-intake encrypt-password {fix}'"
        )

    def rotate(self, envelope: str, *, conn_id: str, mailbox: str | None = None) -> str:
        """Re-encrypt an envelope under the active key, bound to the mailbox when one is given."""
        return self.encrypt(self.decrypt(envelope, conn_id=conn_id, mailbox=mailbox), conn_id=conn_id, mailbox=mailbox)


def _bound_to(conn_id: str | None, mailbox: str | None) -> bytes:
    if mailbox:
        login, _at, host = mailbox.rpartition("@")
        return f"mailbox:{login}@{host.lower()}".encode()
    return str(conn_id).encode()


def mailbox_of(login: str | None, host: str | None) -> str | None:
    """The mailbox an envelope is bound to: the connection's login at its host (as in the ledger)."""
    return f"{login}@{host.lower()}" if login and host else None

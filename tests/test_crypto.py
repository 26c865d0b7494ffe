from __future__ import annotations

import base64

import pytest

from imap_intake.crypto import KeyRing, generate_key
from imap_intake.exceptions import CredentialError

K1, K2 = generate_key(), generate_key()


def ring(active: str = "k2") -> KeyRing:
    return KeyRing.from_env({"IMAP_INTAKE_KEYS": f"k1:{K1},k2:{K2}", "IMAP_INTAKE_ACTIVE_KEY": active})


def test_round_trip_and_random_nonce() -> None:
    a = ring().encrypt("s3cret-app-password", conn_id="imap_acme")
    b = ring().encrypt("s3cret-app-password", conn_id="imap_acme")
    assert a != b and a.startswith("aesgcm:v1:k2:") and "s3cret" not in a
    assert ring().decrypt(a, conn_id="imap_acme") == "s3cret-app-password"
    nonce = base64.b64decode(a.split(":")[3])
    assert len(nonce) == 12


def test_envelope_is_bound_to_its_connection() -> None:
    """Envelopes of earlier versions: bound to the connection id; they still open there, nowhere else."""
    envelope = ring().encrypt("pw-12345", conn_id="imap_acme")
    assert ring().decrypt(envelope, conn_id="imap_acme", mailbox="orders@acme.example@imap.acme.example") == "pw-12345"
    with pytest.raises(CredentialError, match="does not open with key 'k2'.*another mailbox.*--conn-id imap_other"):
        ring().decrypt(envelope, conn_id="imap_other")


def test_envelope_is_bound_to_its_mailbox_whatever_the_connection_id() -> None:
    envelope = ring().encrypt("pw-12345", mailbox="orders@acme.example@IMAP.acme.example")
    assert ring().decrypt(envelope, conn_id="Xa7kT2q9", mailbox="orders@acme.example@imap.acme.example") == "pw-12345"
    with pytest.raises(CredentialError, match="--mailbox other@acme.example@imap.acme.example"):
        ring().decrypt(envelope, conn_id="Xa7kT2q9", mailbox="other@acme.example@imap.acme.example")
    rebound = ring().rotate(ring().encrypt("pw-9", conn_id="old"), conn_id="old", mailbox="orders@acme.example@imap.acme.example")
    assert ring().decrypt(rebound, conn_id="anything", mailbox="orders@acme.example@imap.acme.example") == "pw-9"


def test_tampering_is_detected_and_names_the_key() -> None:
    envelope = ring().encrypt("pw-12345", conn_id="c")
    head, sealed = envelope.rsplit(":", 1)
    raw = bytearray(base64.b64decode(sealed))
    raw[0] ^= 1
    with pytest.raises(CredentialError, match="key 'k2'"):
        ring().decrypt(f"{head}:{base64.b64encode(bytes(raw)).decode()}", conn_id="c")


def test_rotation_moves_to_the_active_key_and_old_keys_still_open() -> None:
    old = ring(active="k1").encrypt("pw-12345", conn_id="c")
    rotated = ring(active="k2").rotate(old, conn_id="c")
    assert rotated.startswith("aesgcm:v1:k2:") and ring().decrypt(rotated, conn_id="c") == "pw-12345"


def test_unknown_key_id_says_which() -> None:
    envelope = ring().encrypt("pw-12345", conn_id="c")
    only_k1 = KeyRing.from_env({"IMAP_INTAKE_KEYS": f"k1:{K1}"})
    with pytest.raises(CredentialError, match="key 'k2', which is not in IMAP_INTAKE_KEYS"):
        only_k1.decrypt(envelope, conn_id="c")


@pytest.mark.parametrize("spec", ["", "nokey", f"k1:{base64.b64encode(b'short').decode()}", "k1:!!!"])
def test_bad_key_configuration(spec: str) -> None:
    with pytest.raises(CredentialError):
        KeyRing.from_env({"IMAP_INTAKE_KEYS": spec})

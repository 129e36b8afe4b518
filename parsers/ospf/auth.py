"""OSPF authentication: OSPFv2 null / simple password / cryptographic (RFC 2328 D, RFC 5709) and the OSPFv3
authentication trailer (RFC 7166). Pure functions over bytes; keys come from the caller.

OSPFv2 cryptographic authentication appends a message digest after the packet (outside the OSPF length). Its
length tells the algorithm: 16 bytes keyed MD5 (RFC 2328 D.4.3: MD5 over the packet followed by the key padded
to 16 bytes), 20/32/48/64 bytes HMAC-SHA-1/256/384/512 (RFC 5709 3.3: HMAC over the packet followed by Apad).
OSPFv3 (RFC 7166 4.5): HMAC-SHA over the IPv6 source address, the packet and the trailer with Apad in place of
the digest. A digest without a configured key is reported as unverified, never as failed.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType

__all__ = [
    "apad",
    "AuthStatus",
    "AuthTrailer",
    "AuthType",
    "decode_trailer",
    "digest_v2",
    "digest_v3",
    "encode_trailer",
    "verify_v2",
    "verify_v3",
]


class AuthType(IntEnum):
    """OSPFv2 AuType (RFC 2328 D; RFC 5709 keeps 2 for HMAC-SHA)."""

    NULL = 0
    SIMPLE = 1
    CRYPTOGRAPHIC = 2


class AuthStatus(Enum):
    NONE = "none"  # null authentication / no trailer
    SIMPLE = "simple"  # cleartext password: nothing to verify
    VERIFIED = "verified"
    FAILED = "failed"  # a key was given and the digest does not match
    UNVERIFIED = "unverified"  # a digest is present but no key for its key ID / SA ID
    MALFORMED = "malformed"  # the digest is missing, of an unknown length, or the trailer does not parse


APAD_WORD = bytes.fromhex("878FE1F3")  # RFC 5709 3.3 / RFC 7166 4.5
MD5_KEY_LEN = 16
V3_TRAILER_HEAD = 16  # auth type, auth data length, reserved, SA ID, 64-bit sequence number (RFC 7166 4.1)
V3_AUTH_TYPE_HMAC = 1  # RFC 7166 4.1: HMAC Cryptographic Authentication
_TRAILER = struct.Struct("!HHHHQ")

# digest length -> hash constructor: MD5 for the classic scheme, SHA for the HMAC schemes
_V2_DIGESTS: Mapping[int, Callable[..., object]] = MappingProxyType(
    {16: hashlib.md5, 20: hashlib.sha1, 32: hashlib.sha256, 48: hashlib.sha384, 64: hashlib.sha512}
)
_HMAC_DIGESTS: Mapping[int, Callable[..., object]] = MappingProxyType(
    {20: hashlib.sha1, 32: hashlib.sha256, 48: hashlib.sha384, 64: hashlib.sha512}
)


def apad(length: int) -> bytes:
    """Apad of RFC 5709 3.3: the word 0x878FE1F3 repeated to `length` bytes."""
    return (APAD_WORD * (length // 4 + 1))[:length]


def _hmac_key(key: bytes, length: int, hash_new: Callable[..., object]) -> bytes:
    # RFC 5709 3.3 / RFC 7166 4.5: a key shorter than L is zero-padded, a longer one is hashed first
    if len(key) > length:
        return hash_new(key).digest()  # type: ignore[attr-defined,no-any-return]
    return key.ljust(length, b"\x00")


def digest_v2(packet: bytes, key: bytes, length: int) -> bytes | None:
    """The digest an OSPFv2 packet (as sent, up to its OSPF length) carries for `key`; None for an unknown length."""
    if length == MD5_KEY_LEN:
        return hashlib.md5(packet + key[:MD5_KEY_LEN].ljust(MD5_KEY_LEN, b"\x00")).digest()
    hash_new = _HMAC_DIGESTS.get(length)
    if hash_new is None:
        return None
    return hmac.new(_hmac_key(key, length, hash_new), packet + apad(length), hash_new).digest()  # type: ignore[arg-type]


def verify_v2(packet: bytes, digest: bytes, key: bytes | None) -> AuthStatus:
    if len(digest) not in _V2_DIGESTS:
        return AuthStatus.MALFORMED
    if key is None:
        return AuthStatus.UNVERIFIED
    expected = digest_v2(packet, key, len(digest))
    return AuthStatus.VERIFIED if expected and hmac.compare_digest(expected, digest) else AuthStatus.FAILED


@dataclass(frozen=True, slots=True)
class AuthTrailer:
    """The OSPFv3 Authentication Trailer (RFC 7166 4.1)."""

    auth_type: int
    sa_id: int
    sequence: int  # 64 bits
    digest: bytes
    reserved: int = 0


def decode_trailer(data: bytes) -> AuthTrailer | None:
    """The trailer in `data` (the bytes after the OSPFv3 packet), or None when it does not parse."""
    if len(data) < V3_TRAILER_HEAD:
        return None
    auth_type, length, reserved, sa_id, sequence = _TRAILER.unpack_from(data)
    if length < V3_TRAILER_HEAD or length > len(data):
        return None
    return AuthTrailer(auth_type, sa_id, sequence, bytes(data[V3_TRAILER_HEAD:length]), reserved)


def encode_trailer(trailer: AuthTrailer) -> bytes:
    length = V3_TRAILER_HEAD + len(trailer.digest)
    head = _TRAILER.pack(trailer.auth_type, length, trailer.reserved, trailer.sa_id, trailer.sequence)
    return head + trailer.digest


def digest_v3(packet: bytes, source: bytes, trailer: AuthTrailer, key: bytes) -> bytes | None:
    """The digest for an OSPFv3 packet sent from `source` (16-byte IPv6 address); None for an unknown length."""
    length = len(trailer.digest)
    hash_new = _HMAC_DIGESTS.get(length)
    if hash_new is None:
        return None
    head = encode_trailer(trailer)[:V3_TRAILER_HEAD]
    text = source + packet + head + apad(length)
    return hmac.new(_hmac_key(key, length, hash_new), text, hash_new).digest()  # type: ignore[arg-type]


def verify_v3(packet: bytes, source: bytes | None, trailer: AuthTrailer | None, key: bytes | None) -> AuthStatus:
    if trailer is None or trailer.auth_type != V3_AUTH_TYPE_HMAC or len(trailer.digest) not in _HMAC_DIGESTS:
        return AuthStatus.MALFORMED
    if key is None or source is None:
        return AuthStatus.UNVERIFIED
    expected = digest_v3(packet, source, trailer, key)
    return AuthStatus.VERIFIED if expected and hmac.compare_digest(expected, trailer.digest) else AuthStatus.FAILED

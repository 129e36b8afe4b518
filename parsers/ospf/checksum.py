"""The two OSPF checksums: the LSA Fletcher checksum and the packet's Internet checksum.

* LSA: the ISO 8473 Fletcher checksum over the LSA without its LS age (RFC 2328 12.1.7, RFC 905 Annex B).
  The LS checksum field sits at LSA offset 16, i.e. octet 15 (1-based) of the checksummed bytes.
* OSPFv2 packet: the IP one's-complement checksum over the whole packet except the 64-bit authentication
  field (RFC 2328 D.4.1 / A.3.1); not computed with cryptographic authentication (RFC 2328 D.4.3).
* OSPFv3 packet: the IPv6 upper-layer checksum with the pseudo-header (RFC 5340 A.3.1, RFC 8200 8.1).
"""

from __future__ import annotations

import sys
from array import array
from operator import mul

__all__ = [
    "fletcher_checksum",
    "fletcher_ok",
    "internet_checksum",
    "ospf3_checksum",
    "ospf2_checksum",
]

MODULUS = 255
LSA_AGE_LEN = 2  # the checksum skips LS age
LSA_CHECKSUM_AT = 16  # offset of the LS checksum field in the LSA header
OSPF2_CHECKSUM_AT = 12  # offset of the checksum in the OSPF packet header
OSPF2_AUTH_AT, OSPF2_AUTH_END = 16, 24  # the authentication field, left out of the v2 packet checksum
OSPF3_CHECKSUM_AT = 12
IPPROTO_OSPF = 89


def _sums(data: bytes) -> tuple[int, int]:
    # c0 = sum of the bytes, c1 = sum of the running c0 = sum of byte * (bytes from it to the end, itself
    # included). Computed with C-level sum/map rather than a Python loop per byte: about 20 times faster.
    size = len(data)
    c0 = sum(data)
    c1 = sum(map(mul, data, range(size, 0, -1)))
    return c0 % MODULUS, c1 % MODULUS


def fletcher_ok(lsa: bytes) -> bool:
    """True when the LSA (header included, age first) carries a correct Fletcher checksum."""
    if len(lsa) < LSA_CHECKSUM_AT + 2 or lsa[LSA_CHECKSUM_AT] == 0 and lsa[LSA_CHECKSUM_AT + 1] == 0:
        return False  # a zero checksum means "not computed", which RFC 2328 12.1.7 does not allow for LSAs
    c0, c1 = _sums(lsa[LSA_AGE_LEN:])
    return c0 == 0 and c1 == 0


def fletcher_checksum(lsa: bytes) -> int:
    """The value the LS checksum field must hold for this LSA (its current checksum bytes are ignored)."""
    body = bytearray(lsa[LSA_AGE_LEN:])
    at = LSA_CHECKSUM_AT - LSA_AGE_LEN
    body[at : at + 2] = b"\x00\x00"
    c0, c1 = _sums(bytes(body))
    # RFC 905 Annex B / ISO 8473: place X, Y so that both running sums end at zero.
    position = len(body) - at  # distance from the checksum octet to the end, 1-based
    x = ((position - 1) * c0 - c1) % MODULUS
    y = (c1 - position * c0) % MODULUS
    return ((x or MODULUS) << 8) | (y or MODULUS)


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum of 16-bit words, complemented."""
    if len(data) % 2:
        data += b"\x00"
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()  # the words are big-endian on the wire
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ospf2_checksum(packet: bytes) -> int:
    """The checksum field value for an OSPFv2 packet (checksum and authentication fields taken as zero)."""
    data = packet[:OSPF2_CHECKSUM_AT] + b"\x00\x00" + packet[OSPF2_CHECKSUM_AT + 2 : OSPF2_AUTH_AT]
    return internet_checksum(data + packet[OSPF2_AUTH_END:])


def ospf3_checksum(packet: bytes, src: bytes, dst: bytes) -> int:
    """The checksum field value for an OSPFv3 packet sent from `src` to `dst` (16-byte IPv6 addresses)."""
    pseudo = src + dst + len(packet).to_bytes(4, "big") + bytes(3) + bytes((IPPROTO_OSPF,))
    data = packet[:OSPF3_CHECKSUM_AT] + b"\x00\x00" + packet[OSPF3_CHECKSUM_AT + 2 :]
    return internet_checksum(pseudo + data)

"""NLRI fields: splitting them into prefixes, and prefixes to and from text.

A prefix travels as its wire form, `bytes([length]) + significant octets` (RFC 4271 4.3): it is compact, hashes
fast, and is what the RIB keys on. Text is made only when something is shown. With ADD-PATH (RFC 7911 3) every
prefix is preceded by a 4-byte path identifier; `Nlri.path_id` is None when the session sends none.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from parsers.bgp.constants import Afi, AfiSafi, Safi, UpdateSubcode
from parsers.errors import Action, ParseError

PATH_ID_LEN = 4  # RFC 7911 3
MAX_PREFIX_BITS = {Afi.IPV4: 32, Afi.IPV6: 128}
ADDRESS_BYTES = {Afi.IPV4: 4, Afi.IPV6: 16}
_ZERO = bytes(1)
_FAMILY = {Afi.IPV4: socket.AF_INET, Afi.IPV6: socket.AF_INET6}
# Families whose NLRI are (length in bits, bits) entries: unicast/multicast, labelled (RFC 8277: the bits include
# labels), VPN (RFC 4364 4.3.4: labels + RD + prefix). EVPN (RFC 7432 7) uses (type, length in octets) instead.
BIT_LENGTH_SAFIS = frozenset({Safi.UNICAST, Safi.MULTICAST, Safi.MPLS_LABEL, Safi.MPLS_VPN})
OCTET_LENGTH_SAFIS = frozenset({Safi.EVPN})


class Nlri(NamedTuple):
    """One NLRI entry: the wire prefix (length byte first) and its ADD-PATH identifier, if the session has them."""

    prefix: bytes
    path_id: int | None = None


class NlriField(NamedTuple):
    """A split NLRI field: prefixes, and their path identifiers in the same order when the session has them.

    Two parallel lists rather than one record per prefix: a full table is hundreds of thousands of prefixes.
    """

    prefixes: list[bytes]
    path_ids: list[int] | None
    error: ParseError | None

    def entries(self) -> list[Nlri]:
        ids = self.path_ids
        return [Nlri(p, ids[i] if ids is not None else None) for i, p in enumerate(self.prefixes)]


def split_nlri(data: bytes | memoryview, family: AfiSafi, add_path: bool, base_offset: int = 0) -> NlriField:
    """Split an NLRI field; on malformation, the entries before it and the error.

    Unicast prefixes are checked against the address width; other families are split by their length rule and kept
    raw. A family with no known length rule comes back as one raw entry (counted, never misparsed).
    """
    afi, safi = family
    data = bytes(data)
    end = len(data)
    out: list[bytes] = []
    append = out.append
    ids: list[int] | None = [] if add_path else None
    i = 0
    if safi in BIT_LENGTH_SAFIS:
        max_bits = MAX_PREFIX_BITS.get(afi, 255) if safi in (Safi.UNICAST, Safi.MULTICAST) else 255
        if ids is None:
            # The hot path: no path identifiers.
            while i < end:
                bits = data[i]
                stop = i + 1 + ((bits + 7) >> 3)
                if bits > max_bits or stop > end:
                    break
                append(data[i:stop])
                i = stop
        else:
            while i < end:
                if i + PATH_ID_LEN >= end:
                    break
                bits = data[i + PATH_ID_LEN]
                stop = i + PATH_ID_LEN + 1 + ((bits + 7) >> 3)
                if bits > max_bits or stop > end:
                    break
                ids.append(int.from_bytes(data[i : i + PATH_ID_LEN], "big"))
                append(data[i + PATH_ID_LEN : stop])
                i = stop
    elif safi in OCTET_LENGTH_SAFIS:
        skip = PATH_ID_LEN if ids is not None else 0
        while i < end:
            if i + skip + 2 > end:
                break
            stop = i + skip + 2 + data[i + skip + 1]
            if stop > end:
                break
            if ids is not None:
                ids.append(int.from_bytes(data[i : i + PATH_ID_LEN], "big"))
            append(data[i + skip : stop])
            i = stop
    else:
        return NlriField([data] if data else [], None, None)
    if i < end:
        error = ParseError(
            "malformed NLRI",
            base_offset + i,
            end - i,
            Action.SESSION_RESET,  # RFC 7606 5.3: a NLRI that cannot be parsed leaves no safe option
            3,
            UpdateSubcode.INVALID_NETWORK_FIELD,
            f"{len(out)} entries parsed, then an entry that does not fit the {end}-byte field",
        )
        return NlriField(out, ids, error)
    return NlriField(out, ids, None)


def nlri_fits(data: bytes | memoryview, family: AfiSafi, add_path: bool) -> bool:
    """True when the field splits exactly under this ADD-PATH assumption (used only to infer a missing OPEN)."""
    return split_nlri(data, family, add_path).error is None


def encode_nlri(entries: list[Nlri] | tuple[Nlri, ...]) -> bytes:
    """The NLRI field for `entries` (path identifiers written when present)."""
    parts = []
    for entry in entries:
        if entry.path_id is not None:
            parts.append(entry.path_id.to_bytes(PATH_ID_LEN, "big"))
        parts.append(entry.prefix)
    return b"".join(parts)


# Entry size (length octet + prefix octets) per first octet of a unicast NLRI entry, per AFI; a length beyond the
# address width maps past any field, so the one bounds check in `unicast_prefixes` also catches it.
_NO_FIT = 1 << 30
UNICAST_ENTRY_SIZES = {
    afi: tuple(1 + ((bits + 7) >> 3) if bits <= width * 8 else _NO_FIT for bits in range(256))
    for afi, width in ADDRESS_BYTES.items()
}


def unicast_prefixes(data: bytes, i: int, end: int, sizes: tuple[int, ...]) -> list[bytes] | None:
    """The wire prefixes laid end to end in data[i:end] (a unicast NLRI field without path identifiers; sizes:
    `UNICAST_ENTRY_SIZES` of its AFI), or None if they do not split exactly into prefixes of that width."""
    out: list[bytes] = []
    append = out.append
    while i < end:
        stop = i + sizes[data[i]]
        if stop > end:
            return None
        append(data[i:stop])
        i = stop
    return out


def prefix_to_text(afi: int, prefix: bytes) -> str:
    """'198.51.100.0/24' for the wire prefix of a unicast family; hex for anything else."""
    width = ADDRESS_BYTES.get(afi)
    if width is None or not prefix:
        return prefix.hex()
    address = socket.inet_ntop(_FAMILY[afi], prefix[1:].ljust(width, _ZERO))
    return f"{address}/{prefix[0]}"


def prefix_from_text(text: str) -> tuple[int, bytes]:
    """(afi, wire prefix) for '198.51.100.0/24' or '2001:db8::/32'; host bits are cleared."""
    address, _, length = text.partition("/")
    afi = Afi.IPV6 if ":" in address else Afi.IPV4
    width = ADDRESS_BYTES[afi]
    bits = int(length) if length else width * 8
    if not 0 <= bits <= width * 8:
        raise ValueError(f"prefix length {bits} out of range in {text!r}")
    raw = int.from_bytes(socket.inet_pton(_FAMILY[afi], address), "big")
    raw &= ((1 << bits) - 1) << (width * 8 - bits) if bits else 0
    return afi, bytes([bits]) + raw.to_bytes(width, "big")[: (bits + 7) >> 3]


def canonical(prefix: bytes) -> bytes:
    """The prefix with host bits past its length cleared (RFC 4271 4.3: trailing bits are irrelevant)."""
    spare = -prefix[0] & 7
    if not spare or len(prefix) < 2 or not prefix[-1] & ((1 << spare) - 1):
        return prefix
    return prefix[:-1] + bytes([prefix[-1] & (0xFF << spare) & 0xFF])


def covering_prefixes(address: str) -> tuple[int, list[bytes]]:
    """(afi, every wire prefix that contains `address`, longest first): the keys a longest-prefix match probes.

    A dict probe per length costs nothing at insert time, unlike a trie beside the table: measured, keeping
    pytricia in step with 600,000 announcements cost more than all the lookups a controller makes.
    """
    afi, full = prefix_from_text(address)
    raw = int.from_bytes(full[1:], "big")
    width = len(full) - 1
    total = width * 8
    out = []
    for bits in range(total, -1, -1):
        masked = raw & (((1 << bits) - 1) << (total - bits)) if bits else 0
        out.append(bytes([bits]) + masked.to_bytes(width, "big")[: (bits + 7) >> 3])
    return afi, out

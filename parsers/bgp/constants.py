"""BGP wire numbers, named. Each block cites where it is defined."""

from __future__ import annotations

from enum import IntEnum
from functools import cache

# RFC 4271 4.1: every message starts with a 16-byte all-ones marker, a 2-byte length and a 1-byte type.
MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096  # RFC 4271 4.1
MAX_EXTENDED_MESSAGE_LEN = 65535  # RFC 8654 4
AS_TRANS = 23456  # RFC 6793 9
BGP_PORT = 179  # RFC 4271 8.2.1 (TCP port)


class MessageType(IntEnum):
    """RFC 4271 4.1, RFC 2918 3 (ROUTE-REFRESH)."""

    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class Afi(IntEnum):
    """IANA Address Family Numbers (the ones sniffroute names)."""

    IPV4 = 1
    IPV6 = 2
    L2VPN = 25


class Safi(IntEnum):
    """IANA SAFI values (the ones sniffroute names)."""

    UNICAST = 1
    MULTICAST = 2
    MPLS_LABEL = 4  # RFC 8277
    EVPN = 70  # RFC 7432
    MPLS_VPN = 128  # RFC 4364 / RFC 4659
    FLOWSPEC = 133  # RFC 8955


class AttrCode(IntEnum):
    """IANA BGP Path Attributes."""

    ORIGIN = 1  # RFC 4271 5.1.1
    AS_PATH = 2  # RFC 4271 5.1.2
    NEXT_HOP = 3  # RFC 4271 5.1.3
    MULTI_EXIT_DISC = 4  # RFC 4271 5.1.4
    LOCAL_PREF = 5  # RFC 4271 5.1.5
    ATOMIC_AGGREGATE = 6  # RFC 4271 5.1.6
    AGGREGATOR = 7  # RFC 4271 5.1.7
    COMMUNITIES = 8  # RFC 1997
    ORIGINATOR_ID = 9  # RFC 4456 8
    CLUSTER_LIST = 10  # RFC 4456 8
    MP_REACH_NLRI = 14  # RFC 4760 3
    MP_UNREACH_NLRI = 15  # RFC 4760 4
    EXTENDED_COMMUNITIES = 16  # RFC 4360
    AS4_PATH = 17  # RFC 6793 3
    AS4_AGGREGATOR = 18  # RFC 6793 3
    PMSI_TUNNEL = 22  # RFC 6514
    TUNNEL_ENCAPSULATION = 23  # RFC 9012
    AIGP = 26  # RFC 7311
    LARGE_COMMUNITIES = 32  # RFC 8092
    BGPSEC_PATH = 33  # RFC 8205
    OTC = 35  # RFC 9234
    PREFIX_SID = 40  # RFC 8669
    ATTR_SET = 128  # RFC 6368


class AttrFlag(IntEnum):
    """RFC 4271 4.3, path attribute flags octet."""

    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class Origin(IntEnum):
    """RFC 4271 5.1.1."""

    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class SegmentType(IntEnum):
    """AS_PATH segment types: RFC 4271 4.3 (SET, SEQUENCE), RFC 5065 3 (confederation segments)."""

    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


class CapabilityCode(IntEnum):
    """IANA Capability Codes."""

    MULTIPROTOCOL = 1  # RFC 4760 8
    ROUTE_REFRESH = 2  # RFC 2918
    OUTBOUND_ROUTE_FILTERING = 3  # RFC 5291
    EXTENDED_NEXT_HOP = 5  # RFC 8950
    EXTENDED_MESSAGE = 6  # RFC 8654
    BGPSEC = 7  # RFC 8205
    MULTIPLE_LABELS = 8  # RFC 8277
    ROLE = 9  # RFC 9234
    GRACEFUL_RESTART = 64  # RFC 4724
    FOUR_OCTET_AS = 65  # RFC 6793
    ADD_PATH = 69  # RFC 7911
    ENHANCED_ROUTE_REFRESH = 70  # RFC 7313
    LONG_LIVED_GRACEFUL_RESTART = 71  # RFC 9494
    FQDN = 73  # draft-walton-bgp-hostname-capability
    ROUTE_REFRESH_CISCO = 128  # pre-standard Cisco code


class AddPathMode(IntEnum):
    """RFC 7911 4, Send/Receive field."""

    RECEIVE = 1
    SEND = 2
    BOTH = 3


class NotificationCode(IntEnum):
    """RFC 4271 4.5, RFC 7313 5 (ROUTE-REFRESH message error)."""

    MESSAGE_HEADER_ERROR = 1
    OPEN_MESSAGE_ERROR = 2
    UPDATE_MESSAGE_ERROR = 3
    HOLD_TIMER_EXPIRED = 4
    FSM_ERROR = 5
    CEASE = 6
    ROUTE_REFRESH_MESSAGE_ERROR = 7


class HeaderSubcode(IntEnum):
    """RFC 4271 6.1."""

    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(IntEnum):
    """RFC 4271 6.2, RFC 5492 5, RFC 9234 4.2."""

    UNSUPPORTED_VERSION_NUMBER = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7
    ROLE_MISMATCH = 11


class UpdateSubcode(IntEnum):
    """RFC 4271 6.3."""

    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN_ATTRIBUTE = 6
    INVALID_NEXT_HOP_ATTRIBUTE = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class CeaseSubcode(IntEnum):
    """RFC 4486 4, RFC 8538 (hard reset), RFC 9384 (BFD down)."""

    MAXIMUM_PREFIXES_REACHED = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9
    BFD_DOWN = 10


class RouteRefreshSubtype(IntEnum):
    """RFC 7313 3: the byte RFC 2918 reserved."""

    NORMAL = 0
    BEGIN_OF_ROUTE_REFRESH = 1
    END_OF_ROUTE_REFRESH = 2


AfiSafi = tuple[int, int]
IPV4_UNICAST: AfiSafi = (Afi.IPV4, Safi.UNICAST)
IPV6_UNICAST: AfiSafi = (Afi.IPV6, Safi.UNICAST)


@cache  # a listing names the family of every route: a few families, looked up once each
def family_name(family: AfiSafi) -> str:
    """'ipv4-unicast', 'ipv6-mpls-vpn', or 'afi-25-safi-70' style for the unnamed."""
    afi, safi = family
    try:
        afi_name = Afi(afi).name.lower()
        safi_name = Safi(safi).name.lower().replace("_", "-")
    except ValueError:
        return f"afi-{afi}-safi-{safi}"
    return f"{afi_name}-{safi_name}"

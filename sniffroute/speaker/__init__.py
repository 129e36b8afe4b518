"""The minimal BGP session holder: keeps sessions up, advertises nothing, runs no best path.

Routes reach the RIB only through the sniffed frames of these sessions. The protocol logic is the sans-I/O
`session.Session` (bytes, timer ticks and commands in, with `now`; bytes to send, close and events out);
`holder.SessionHolder` is the asyncio edge that owns the sockets, TCP-MD5, listeners and reconnect backoff.

    holder = SessionHolder([PeerConfig(address="10.0.0.1", peer_as=64501, local_as=64512,
                                       router_id="10.0.0.254", local_address="10.0.0.254")],
                           on_event=print)
    await holder.run()                      # until stop(); or asyncio.run(holder.run()) on a thread of its own
    holder.request_refresh("10.0.0.1", 2, 1)  # ROUTE-REFRESH IPv6 unicast (any thread)
    holder.status()                         # PeerStatus snapshots (any thread)
    await holder.stop("maintenance")        # Cease/Administrative Shutdown with the message; holder.stop_threadsafe

What it speaks: OPEN with multiprotocol IPv4 and IPv6 unicast, 4-octet AS, route refresh, enhanced route refresh
and graceful restart as the receiving speaker (restart time, no families: RFC 4724 3); KEEPALIVE every third of
the negotiated hold time (the smaller of the two), NOTIFICATION 4/0 when it expires; header, OPEN and FSM errors
answered with the RFC 4271 / RFC 6608 codes; received UPDATEs and ROUTE-REFRESHes ignored; no End-of-RIB sent.

Peers are `passive` (only accepted) or active (dialled, and accepted too: collisions are resolved by BGP
Identifier as RFC 4271 6.8 says). Addresses must be global or loopback: link-local peers are not supported.

Any other speaker can hold the sessions instead, since the routes are sniffed either way: run it on the
controller host bound to the router address on the TAP and configured to advertise nothing, e.g. ExaBGP
(`neighbor PEER { local-address ROUTER; router-id ROUTER; local-as A; peer-as B; family { ipv4 unicast;
ipv6 unicast; } }` with no static routes) or gobgpd (`[global.config] as = A, router-id = ROUTER,
local-address-list = [ROUTER]` and a `[[neighbors]]` entry per peer with `transport.config.local-address = ROUTER`
and no routes injected), and leave `peers` out of sniffroute's configuration.
"""

from sniffroute.speaker.config import PeerConfig, PeerConfigError
from sniffroute.speaker.events import (
    ConnectFailed,
    PeerState,
    PeerStatus,
    RefreshReceived,
    RefreshSent,
    SessionDown,
    SessionEstablished,
    SpeakerEvent,
    StateChanged,
)
from sniffroute.speaker.holder import SessionHolder

__all__ = [
    "ConnectFailed",
    "PeerConfig",
    "PeerConfigError",
    "PeerState",
    "PeerStatus",
    "RefreshReceived",
    "RefreshSent",
    "SessionDown",
    "SessionEstablished",
    "SessionHolder",
    "SpeakerEvent",
    "StateChanged",
]

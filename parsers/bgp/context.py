"""The facts a BGP decoder needs about one direction of one session, and how they follow from the OPENs.

Nothing here is guessed from the bytes of an UPDATE: a context comes from the two OPENs of the session, or is
stated by whoever builds it (and then marked `inferred`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from parsers.bgp.constants import AddPathMode, AfiSafi


class OpenFacts(Protocol):
    """What `negotiate` reads from an OPEN (parsers.bgp.open.Open provides it)."""

    @property
    def four_octet_as(self) -> int | None: ...

    @property
    def add_path(self) -> dict[AfiSafi, AddPathMode]: ...

    @property
    def extended_message(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class SessionContext:
    """How to decode the messages one speaker sends (one direction of a session).

    as4: AS numbers in AS_PATH/AGGREGATOR are 4 octets (RFC 6793: both sides advertised the capability).
    add_path: families whose NLRI this speaker sends with a path identifier (RFC 7911 4: it advertised
        send for the family and its peer advertised receive).
    extended_message: messages may be up to 65535 bytes (RFC 8654: both sides advertised it).
    inferred: no OPEN pair was seen; the context was chosen from what decodes exactly.
    """

    as4: bool = True
    add_path: frozenset[AfiSafi] = frozenset()
    extended_message: bool = False
    inferred: bool = False

    @property
    def max_message_len(self) -> int:
        from parsers.bgp.constants import MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN

        return MAX_EXTENDED_MESSAGE_LEN if self.extended_message else MAX_MESSAGE_LEN


def negotiate(sender: OpenFacts, receiver: OpenFacts) -> SessionContext:
    """The context for messages `sender` sends, given both OPENs of the session."""
    add_path = frozenset(
        family
        for family, mode in sender.add_path.items()
        if mode & AddPathMode.SEND and receiver.add_path.get(family, 0) & AddPathMode.RECEIVE
    )
    return SessionContext(
        as4=sender.four_octet_as is not None and receiver.four_octet_as is not None,
        add_path=add_path,
        extended_message=sender.extended_message and receiver.extended_message,
    )

"""Errors are values: every decoder reports what went wrong, where, and what RFC 7606 says to do.

Only `DecodeError` (and its subclass `NeedData`) may leave a decoder as an exception; anything else escaping
a decoder is a bug in sniffroute, not in the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class InputError(Exception):
    """A file or an argument given by the user that cannot be used: the command says so in one line and exits 1.
    The errors of each module (captures, the store, OSPF viewpoints) derive from it, so the command line catches
    them without loading every module."""


class Action(IntEnum):
    """RFC 7606 error-handling outcomes, ordered: a larger value is the stronger one (RFC 7606 section 2)."""

    NONE = 0
    ATTRIBUTE_DISCARD = 1  # drop the attribute, keep the route (RFC 7606 2, "attribute discard")
    TREAT_AS_WITHDRAW = 2  # the UPDATE's NLRI are handled as withdrawn (RFC 7606 2, "treat-as-withdraw")
    AFISAFI_DISABLE = 3  # the address family is disabled for the session (RFC 4760 7)
    SESSION_RESET = 4  # NOTIFICATION and close (RFC 4271 6)


@dataclass(frozen=True, slots=True)
class ParseError:
    """One problem found in wire data.

    `offset` and `length` locate the offending bytes within the buffer handed to the decoder that
    reported it (a message, an attribute block, a frame). `code`/`subcode` are the BGP NOTIFICATION
    codes the problem maps to (0 when it has none), `action` the RFC 7606 outcome.
    """

    kind: str
    offset: int
    length: int
    action: Action = Action.SESSION_RESET
    code: int = 0
    subcode: int = 0
    detail: str = ""

    def __str__(self) -> str:
        where = f"at offset {self.offset}" + (f" (+{self.length})" if self.length else "")
        text = f"{self.kind} {where}"
        if self.detail:
            text += f": {self.detail}"
        return f"{text} [{self.action.name.lower()}]"


class DecodeError(Exception):
    """Malformed input: the bytes can never decode, whatever follows them."""

    def __init__(self, error: ParseError) -> None:
        super().__init__(str(error))
        self.error = error


class NeedData(DecodeError):
    """Truncated input: more bytes are needed before a decision can be made."""


def strongest(errors: tuple[ParseError, ...] | list[ParseError]) -> Action:
    """The strongest RFC 7606 action among `errors` (GoBGP's `ErrorHandling.Stronger`)."""
    if not errors:
        return Action.NONE
    return max(e.action for e in errors)

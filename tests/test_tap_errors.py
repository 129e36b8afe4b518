"""sniffroute.tap's errors say what to do: a TAP another process holds is not a permissions problem."""

from __future__ import annotations

import errno
import os

from sniffroute.tap import _open_problem


def test_a_tap_in_use_says_so_instead_of_suggesting_permissions() -> None:
    busy = OSError(errno.EBUSY, os.strerror(errno.EBUSY))
    text = _open_problem("sr-tap1", os.devnull, busy)  # a device this user may open: not the permissions case
    assert "in use by another process" in text and "tap create" not in text


def test_a_tap_this_user_may_not_attach_says_how_to_create_one() -> None:
    refused = OSError(errno.EPERM, os.strerror(errno.EPERM))
    text = _open_problem("sr-tap1", os.devnull, refused)
    assert "sniffroute tap create --name sr-tap1 --user" in text

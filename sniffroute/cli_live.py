"""`sniffroute run` and `sniffroute tap`: the live controller's commands."""

from __future__ import annotations

import argparse


def add_live_commands(sub: argparse._SubParsersAction) -> None:
    """Register the live commands on the main parser's subcommands."""

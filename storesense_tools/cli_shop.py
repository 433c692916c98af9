"""`storesense` subcommands for the shop part; `storesense_tools.cli` calls `register`.

Heavy imports happen inside each command, as in `storesense_tools.cli`.
"""

from __future__ import annotations

import argparse

from storesense_tools import cli_pos, cli_web


def register(sub: argparse._SubParsersAction) -> None:
    """Add this part's subcommands to the top-level parser."""
    cli_web.register(sub)  # staff add, web run, web pos-token (phone app)
    cli_pos.register(sub)  # pos import/recategorize/birthday/card, suggest build/eval

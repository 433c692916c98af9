"""`storesense` subcommands for the floor part; `storesense.cli` calls `register`.

Heavy imports happen inside each command, as in `storesense.cli`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this part's subcommands to the top-level parser."""

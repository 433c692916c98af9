"""Errors every subcommand module may raise; kept here so they import no CLI code."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""

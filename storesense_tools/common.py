"""What the ``storesense`` sub-command modules share: the store config, the progress bar, and the
check that a hub-only command runs where the hub extra is installed.

Why a module of its own: the sub-command modules (``cli_floor``, ``cli_pos``, ``cli_privacy``,
``cli_web``) used to import these from ``storesense_tools.cli``, which imports them back to
register their commands — an import cycle. Now the entry point ``cli`` imports the sub-command
modules, they all import this module, and no sub-command module imports another.

It imports only the contract and the standard library at module level: ``storesense --help``
must stay instant on a Pi camera.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from storesense.errors import CliError

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from storesense.config import RecognitionConfig, StoreConfig

DISTRIBUTION = "storesense"
HUB_EXTRA = "hub"
# ``set_defaults(extra=HUB_EXTRA)`` on a sub-parser marks its command hub-only: ``cli.main``
# refuses it with one line on a camera install instead of a ModuleNotFoundError traceback.
EXTRA_KEY = "extra"
# ``set_defaults(shared_files=True)``: the command writes files other users must read (the
# broker's config for the mosquitto user, the web certificate) and sets each file's mode
# itself; ``cli.main`` then leaves the umask alone. Every other command runs with 077
# (``storesense.paths.keep_new_files_private``).
SHARED_FILES_KEY = "shared_files"


def operator_name() -> str:
    """Who runs the command, for the audit log (``$USER``; "cli" without one)."""
    return os.environ.get("USER", "cli")


def config_path(args: argparse.Namespace, home: Path) -> Path:
    """``--config``, else ``$STORESENSE_CONFIG``, else ``HOME/store.yaml`` (may not exist)."""
    return Path(args.config or os.environ.get("STORESENSE_CONFIG") or home / "store.yaml")


def read_password(
    args: argparse.Namespace, prompt: str, *, confirm: bool = False, what: str = "the password"
) -> str:
    """A password from ``--password-stdin`` (one line) or asked at the terminal without echo.

    One reader for every command that takes a password (``staff add``, ``faces review
    --apply``), so they agree on the stdin rule and on refusing to hang when there is no
    terminal. ``confirm`` asks twice, for a password being set (a typo would lock the user
    out); ``what`` names the password in the no-terminal error.
    """
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError(f"no terminal to ask for {what}: use --password-stdin")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ")
    return first


def valid_customer_id(value: str) -> str:
    """``value`` if it follows the one customer-id rule (``storesense.ids``), else a CliError
    naming the rule: a command must not store or look up an id the rest of the system refuses
    (a birthday kept under an id no alert can carry)."""
    from storesense import ids  # pydantic: not at module level (`--help` stays instant)

    try:
        return ids.validate_customer_id(value)
    except ids.InvalidId as exc:
        raise CliError(str(exc)) from None


def store_config(args: argparse.Namespace, home: Path) -> StoreConfig:
    """The store config the command was pointed at; a missing file is a one-line CliError."""
    from storesense.config import load_config

    path = config_path(args, home)
    if not path.exists():
        raise CliError(
            f"no store config at {path}: pass --config FILE (see config/store.example.yaml)"
        )
    return load_config(path)


def recognition_config(args: argparse.Namespace, home: Path) -> RecognitionConfig:
    """The store config's ``recognition`` section, or the defaults where there is no config
    (an evaluation or a threshold review may run before the store is set up)."""
    from storesense.config import RecognitionConfig, load_config

    path = config_path(args, home)
    return load_config(path).recognition if path.exists() else RecognitionConfig()


def progress_bar(*columns: ProgressColumn, quiet: bool = False) -> Progress:
    """A rich progress bar on stderr that draws only when a person is watching.

    Why stderr: stdout carries the summary line (and may be piped into a file or a script), so
    it must read the same with or without the bar. Why disabled unless stderr is a terminal:
    under pytest, CI, cron or a pipe a bar is just escape codes in a log; ``--quiet`` turns it
    off at a terminal too. ``add_task``/``advance`` still work when disabled, so callers do not
    branch. Transient, as in ``bench/person_detect.py``: the finished bar leaves no trace.

    rich's live display reroutes ``print`` through its console (here: stderr) so lines land
    above the bar; that is only done when stdout is the same kind of screen. With stdout
    redirected to a file, prints made while the bar runs must still go to that file.
    """
    from rich.console import Console
    from rich.progress import Progress

    return Progress(
        *columns,  # none: rich's default columns
        console=Console(stderr=True),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
        redirect_stdout=sys.stdout.isatty(),
    )


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


@cache
def missing_distributions(extra: str) -> tuple[str, ...]:
    """The distributions of ``storesense[extra]`` that are not installed (empty: all there).

    Read from the installed package's own metadata, so the list is pyproject.toml's and
    cannot drift from a hand-kept copy. A checkout run without any install has no metadata:
    then nothing is reported missing and an import error speaks for itself.
    """
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return ()
    missing = []
    for req in requires:
        marker = _EXTRA_MARKER.search(req.partition(";")[2])
        name = _REQUIREMENT_NAME.match(req)
        if marker is None or marker.group(1) != extra or name is None:
            continue
        try:
            metadata.version(name.group(1))
        except metadata.PackageNotFoundError:
            missing.append(name.group(1))
    return tuple(missing)


def command_words(args: argparse.Namespace) -> str:
    """``hub run``, ``pos import``, ``central user add``: the words the user typed to pick the
    command (a third level's subparser ``dest`` ends in ``_action``, e.g. ``user_action``)."""
    words = [args.command]
    action = getattr(args, "action", None)
    if isinstance(action, str):
        words.append(action)
        sub = getattr(args, f"{action}_action", None)  # ``central user add``
        if isinstance(sub, str):
            words.append(sub)
    return " ".join(words)


def needs_extra_message(args: argparse.Namespace, extra: str) -> str:
    """One line naming the command and the pip command that makes it work."""
    return (
        f"storesense {command_words(args)} needs the {extra} extra: "
        f"pip install '{DISTRIBUTION}[{extra}]'"
    )

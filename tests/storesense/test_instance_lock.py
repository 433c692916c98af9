"""The lock itself: refused while held (naming the holder), free again once released.

The real-process cases (two hubs, two agents, kill -9) are in
tests/storesense_tools/test_cli_single_instance.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storesense.errors import CliError
from storesense.instance_lock import AlreadyRunning, edge_lock, hub_lock


def test_a_held_lock_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    first = hub_lock(tmp_path).acquire()
    with pytest.raises(
        AlreadyRunning, match=rf"a hub on .* is already running \(pid {os.getpid()}"
    ):
        hub_lock(tmp_path).acquire()
    assert issubclass(AlreadyRunning, CliError)  # the CLI prints it as one line, exit 2
    # the refusal kept the holder's pid and name
    assert (tmp_path / "hub.lock").read_text().split("\n")[0] == str(os.getpid())
    first.release()
    with hub_lock(tmp_path):
        pass


def test_each_camera_has_its_own_lock(tmp_path: Path) -> None:
    with (
        edge_lock(tmp_path, "door-1"),
        edge_lock(tmp_path, "floor-1"),
        pytest.raises(AlreadyRunning, match="camera door-1"),
    ):
        edge_lock(tmp_path, "door-1").acquire()


def test_a_restore_holds_the_hubs_lock_and_is_named_in_the_refusal(tmp_path: Path) -> None:
    """One lock for "this home is in use": a restore takes the hub's, so a hub started
    meanwhile is refused naming the restore, and a restore is refused while a hub runs."""
    with hub_lock(tmp_path, doing="a restore"):
        with pytest.raises(AlreadyRunning, match=r"a restore on .* is already running") as hub:
            hub_lock(tmp_path).acquire()
        assert (hub.value.pid, hub.value.holder) == (str(os.getpid()), "a restore")
    with hub_lock(tmp_path), pytest.raises(AlreadyRunning, match="a hub on") as restore:
        hub_lock(tmp_path, doing="a restore").acquire()
    assert restore.value.holder == f"a hub on {tmp_path}"

from pathlib import Path

import pytest

from storesense.paths import resolve_home
from storesense_tools.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_config_check_accepts_the_example(capsys) -> None:
    assert main(["config", "check", str(REPO / "config" / "store.example.yaml")]) == 0
    assert "ok (store store-001, 2 cameras)" in capsys.readouterr().out


def test_config_errors_are_one_clear_line_not_a_traceback(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "store.yaml"
    bad.write_text("store_id: s1\nvisits:\n  cooldown: 5\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: visits.cooldown: unknown key" in err
    assert "Traceback" not in err


def test_hub_without_a_config_says_how_to_fix_it(tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path), "hub", "run"]) == 2
    assert "pass --config FILE" in capsys.readouterr().err


def test_edge_run_for_an_unknown_camera(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "store.yaml"
    cfg.write_text("store_id: s1\ncameras:\n  - {id: door-1, role: entrance, source: 0}\n")
    assert (
        main(["--home", str(tmp_path), "--config", str(cfg), "edge", "run", "--camera", "door-2"])
        == 2
    )
    assert "no camera 'door-2'" in capsys.readouterr().err


def test_erase_of_an_unknown_customer(tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path), "erase", "--customer", "nobody"]) == 2
    assert "no customer 'nobody'" in capsys.readouterr().err


def test_home_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORESENSE_HOME", str(tmp_path / "from-env"))
    assert resolve_home(None) == tmp_path / "from-env"
    assert resolve_home(str(tmp_path / "from-flag")) == tmp_path / "from-flag"
    assert (tmp_path / "from-flag").stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("STORESENSE_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_home(None) == tmp_path / "xdg" / "storesense"

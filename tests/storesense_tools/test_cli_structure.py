"""The CLI's shape: the entry point registers the sub-command modules, which share only
``storesense_tools.common`` (they once formed a cycle through the private ``cli._config``)."""

from __future__ import annotations

from tests.test_layers import MODULES, imports_of

CLI_MODULES = sorted(m for m in MODULES if m.startswith("storesense_tools.cli"))


def test_the_sub_command_modules_exist() -> None:
    assert "storesense_tools.cli" in CLI_MODULES and len(CLI_MODULES) >= 4, CLI_MODULES


def test_only_the_entry_point_imports_cli_modules() -> None:
    """A sub-command module importing another (or the entry point) would tie their
    registration order and start-up cost together; what they share lives in ``common``."""
    bad = [
        f"{module} imports {target} (line {line})"
        for module in MODULES
        if module != "storesense_tools.cli"
        for target, line in imports_of(module)
        if target in CLI_MODULES and target != module
    ]
    assert bad == []


def test_the_entry_point_registers_every_sub_command_module() -> None:
    registered = {t for t, _ in imports_of("storesense_tools.cli")}
    assert set(CLI_MODULES) - {"storesense_tools.cli"} <= registered

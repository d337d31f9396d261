"""The CLI's surface and the settings model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.settings import Settings


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[list[str], Any]]:
    """Every command and group under ``command`` (itself first) with its path: walked from the app itself, so a new
    command is covered without listing it here (duck-typed: Typer vendors its own click)."""
    yield list(path), command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_command_walk_finds_sub_commands():
    assert {"up", "contracts lint", "cdc archive"} <= {" ".join(path) for path, _ in COMMANDS}


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(path) or "olist" for path, _ in COMMANDS])
def test_every_command_has_help(path, command):
    assert (command.help or "").strip(), f"`olist {' '.join(path)}` has no help text"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_up_help_lists_every_service():
    from pipeline.platform import all_services

    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for name in all_services(Settings(), on_demand=True):
        assert re.search(rf"\b{name}\b", result.output), f"`olist up --help` omits {name}"


def test_contracts_commands_pass_on_the_repository():
    runner = CliRunner()
    assert runner.invoke(app, ["contracts", "lint"]).exit_code == 0
    assert runner.invoke(app, ["contracts", "check"]).exit_code == 0


def test_contracts_diff_unknown_ref_is_one_line():
    result = CliRunner().invoke(app, ["contracts", "diff", "no-such-ref-xyz"])
    assert result.exit_code == 1
    assert "git ref 'no-such-ref-xyz'" in result.output
    assert "Traceback" not in result.output


def test_settings_defaults_need_nothing(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("OLIST_"):
            monkeypatch.delenv(key)
    s = Settings()
    assert s.bind_host == "127.0.0.1"
    assert s.pg_port == 0 and s.pg_password is None
    assert s.state_dir.name == ".state"


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OLIST_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("OLIST_PG_PORT", "6543")
    monkeypatch.setenv("OLIST_SCALE", "0.5")
    s = Settings()
    assert (s.state_dir, s.pg_port, s.scale) == (Path(tmp_path), 6543, 0.5)


def test_bad_setting_names_the_field(monkeypatch):
    monkeypatch.setenv("OLIST_PG_PORT", "seventy")
    with pytest.raises(ValueError, match="pg_port"):
        Settings()


def test_settings_survive_the_supervisors_round_trip(tmp_path):
    """The supervised Flink job reads its settings back from JSON; what its plan is compiled from (and so its
    checkpoint folder) must be what every other process computes, or a resume and the fault suite look elsewhere."""
    from emulation.flink import inputs_key

    s = Settings(state_dir=tmp_path).replace(flink={"window_seconds": 2, "checkpoint_interval_seconds": 1})
    assert s.flink.window_seconds == 2.0 and isinstance(s.flink.window_seconds, float)
    again = Settings.model_validate_json(s.model_dump_json())
    assert inputs_key(again.flink) == inputs_key(s.flink)
    with pytest.raises(ValueError, match="window_seconds"):
        s.replace(flink={"window_seconds": -1})


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("SNOWFLAKE_BRONZE_LOAD", "insert", "'copy_into' or 'stage'"),
    ("OLIST_KAFKA_HEAP_MB", "abc", "valid integer"),
    ("OLIST_PG_PORT", "x", "valid integer"),
])
def test_a_setting_the_environment_gets_wrong_is_one_line_naming_the_variable(monkeypatch, variable, value, why):
    from pipeline.settings import get_settings

    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["promote"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"settings: {variable}: " in lines[0] and why in lines[0], result.output
    assert repr(value) not in lines[0] and f"={value}" not in lines[0], "the value itself is never shown"
    assert "Traceback" not in result.output

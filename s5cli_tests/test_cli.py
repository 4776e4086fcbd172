"""The CLI frame: help, version, and the error boundary every command goes through."""

from s5cli import __version__
from s5cli.cli import COMMANDS, app


def test_version(runner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_help_lists_commands_with_an_example_each(runner) -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name, _ in COMMANDS:
        assert name in result.stdout
        assert f"$ s5 {name}" in result.stdout, f"no example of {name} in s5 --help"


def test_every_command_has_an_example(runner) -> None:
    for name, _ in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        assert "$ s5 " in result.stdout, f"{name} --help shows no example"

"""examples/: every script parses, is documented, follows the script rules and calls only real s5 options.

The examples themselves take minutes; they are run by hand (examples/README.md), not here.
"""

import re
import subprocess
from pathlib import Path

import pytest
import typer

from s5cli.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.sh"))
PYTHON = sorted(EXAMPLES.glob("*.py"))
# torchrun's own options, which the scripts pass to `python -m torch.distributed.run`.
TORCHRUN_OPTIONS = {"--standalone", "--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port"}


def _s5_options() -> dict[str, set[str]]:
    """Every registered command and its option names, from the Click command Typer builds."""
    group = typer.main.get_command(app)
    return {
        name: {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)}
        for name, cmd in group.commands.items()
    }


def _called_commands(text: str) -> set[str]:
    """The s5 subcommands a script runs: `s5 NAME` (the script's s5 function) or `-m s5cli NAME`."""
    return set(re.findall(r"(?:^|[\s(])(?:s5|-m s5cli) ([a-z]+)\b", text, flags=re.MULTILINE))


def test_the_expected_examples_exist() -> None:
    names = {p.name for p in [*SCRIPTS, *PYTHON]}
    assert names == {"finetune_own_data.sh", "predict_multi_gpu.sh", "build_corpus.sh", "predict_xarray.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_script_parses_and_follows_the_rules(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    header = []
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3  # what it does, how long it takes, how to point it at your data
    assert re.search(r"\d+(-\d+)? (minutes?|seconds?) on 2 CPU cores", " ".join(header)), header
    assert "set -euo pipefail" in lines


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_script_calls_registered_commands_and_options(script: Path) -> None:
    text = script.read_text()
    options = _s5_options()
    called = _called_commands(text)
    assert called, "the script runs no s5 command"
    assert called <= set(options), called - set(options)
    known = set().union(*(options[c] for c in called)) | TORCHRUN_OPTIONS
    used = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))
    assert used <= known, used - known


@pytest.mark.parametrize("source", PYTHON, ids=lambda p: p.name)
def test_python_example_compiles_and_has_a_header(source: Path) -> None:
    code = compile(source.read_text(), str(source), "exec")
    assert code.co_filename == str(source)
    assert re.search(r"\d+ seconds on 2 CPU cores", source.read_text().split('"""')[1])


@pytest.mark.parametrize("example", [*SCRIPTS, *PYTHON], ids=lambda p: p.name)
def test_every_example_is_in_the_readme(example: Path) -> None:
    readme = (EXAMPLES / "README.md").read_text()
    assert f"## `{example.name}`" in readme  # its own section
    assert f"examples/{example.name}" in readme  # and how to run it

"""The `s5` command line: one Typer app, one module per command, one error boundary applied at registration."""

from __future__ import annotations

import typer

from s5cli import __version__
from s5cli.cli.boundary import OneLineUsageErrors, guarded, set_debug
from s5cli.cli.curate_cmd import curate
from s5cli.cli.datasets_cmd import datasets
from s5cli.cli.demo_cmd import demo
from s5cli.cli.evaluate_cmd import evaluate
from s5cli.cli.export_cmd import export
from s5cli.cli.finetune_cmd import finetune
from s5cli.cli.models_cmd import models
from s5cli.cli.predict_cmd import predict
from s5cli.cli.prepare_cmd import prepare
from s5cli.cli.pretrain_cmd import pretrain
from s5cli.cli.weights_cmd import weights
from s5cli.console import one_line_warnings, set_verbosity

app = typer.Typer(
    name="s5",
    cls=OneLineUsageErrors,
    help=(
        "S5 for GIS: semi-supervised segmentation and oriented detection on aerial and "
        "satellite imagery, with georeferenced outputs.\n\n"
        "Example: s5 predict scene.tif -o buildings.gpkg --checkpoint model.pt"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each command module keeps its heavy imports (torch, rasterio) inside the function, so `s5 --help` is instant.
COMMANDS = {
    "models": models,
    "weights": weights,
    "datasets": datasets,
    "prepare": prepare,
    "predict": predict,
    "pretrain": pretrain,
    "finetune": finetune,
    "evaluate": evaluate,
    "export": export,
    "curate": curate,
    "demo": demo,
}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"s5 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More messages (repeatable)."),
    quiet: int = typer.Option(0, "--quiet", "-q", count=True, help="Fewer messages, no progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """S5 for GIS."""
    set_verbosity(verbose, quiet)
    set_debug(debug)
    if not debug:  # --debug keeps Python's warnings with their source lines
        one_line_warnings()


def _register() -> None:
    examples = []
    for name, func in COMMANDS.items():
        app.command(name=name)(guarded(func))  # the one error boundary: user errors exit 2 with one line
        lines = [line.strip() for line in (func.__doc__ or "").splitlines() if line.strip().startswith("$ s5 ")]
        if lines:
            examples.append(lines[0])
    # `s5 --help` ends with one example per command (each command's --help has them all).
    app.info.epilog = "Examples:\n\n" + "\n\n".join(examples)


_register()


def main() -> None:
    """Entry point of the `s5` console script."""
    app()

"""What the training commands (pretrain, finetune) share: run options and the run config they resolve.

Each command keeps an OPTION_FIELDS table (cli/options.py applies it); this module holds the run options
both share and picks the config: the --config file, or, when resuming a run directory without
--config, the config.yaml the run was started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from s5cli.config import StrictConfig

C = TypeVar("C", bound=StrictConfig)

# Run controls that belong to one invocation, dropped from a saved config.yaml when resuming with it.
ONE_OFF = ("stop_after", "resume", "overwrite")


def opt(*names: str, help: str) -> Any:
    """A typer option without a shown default (None means 'not given': the config decides)."""
    return typer.Option(*names, help=help, show_default=False)


RunOverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace the run in -o (once the new one's first step is done).")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue an unfinished run from its newest training state (RUN/states/).")
]
SeedOpt = Annotated[int | None, opt("--seed", help="Random seed.")]
StopAfterOpt = Annotated[
    int | None, opt("--stop-after", help="Stop after N iterations (saving a state) to --resume later.")
]
LrOpt = Annotated[float | None, opt("--lr", help="Peak learning rate.")]
AmpOpt = Annotated[str | None, opt("--amp", help="Mixed precision: auto, bf16, fp16 or off.")]
CheckpointEveryOpt = Annotated[int | None, opt("--checkpoint-every", help="Save a resumable state every N iterations.")]


def resolve_run_config(
    cls: type[C], config: Path | None, output: Path | None, resume: bool, overrides: dict[str, Any]
) -> C:
    """The run's config: --config (or defaults) with overrides; on --resume without --config, the saved one."""
    from s5cli.config import Overrides, build_config, load_config, set_dotted
    from s5cli.console import info
    from s5cli.training.run_dir import RunDir, check_run_dir, read_run_config

    flags = getattr(overrides, "flags", {})
    if resume and not overrides.get("overwrite"):
        overrides = Overrides({**overrides, "overwrite": False}, flags)  # a run started with --overwrite: not again
    run = RunDir(output) if output is not None else None
    if config is None and resume and run is not None:
        check_run_dir(run.root, resume=True)  # a finished run, or one without a state: say so first
    if config is None and resume and run is not None and run.config.is_file():
        saved = run.config
        info(f"using {saved}")
        data = {k: v for k, v in read_run_config(run, cls).items() if k not in ONE_OFF}
        given = {key for key, value in overrides.items() if value is not None}
        for key in given:
            set_dotted(data, key, overrides[key])
        return build_config(cls, data, str(saved), flags, given)
    return load_config(cls, config, overrides)

"""The CLI frame: help, version, and the error boundary every command goes through."""

from s5cli import __version__
from s5cli.cli import COMMANDS, app


def test_version(runner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_help_lists_commands_with_an_example_each(runner) -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.stdout
        assert f"$ s5 {name}" in result.stdout, f"no example of {name} in s5 --help"


def test_every_command_has_an_example(runner) -> None:
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        assert "$ s5 " in result.stdout, f"{name} --help shows no example"


def _field_exists(cls, dotted: str) -> bool:
    """A dotted field path exists in a pydantic config class (sections followed through `X | None`)."""
    for part in dotted.split("."):
        fields = getattr(cls, "model_fields", {})
        if part not in fields:
            return False
        cls = fields[part].annotation
        cls = next((a for a in getattr(cls, "__args__", ()) if hasattr(a, "model_fields")), cls)
    return True


def _tables():
    """(command, OPTION_FIELDS, config class, parameters that steer the run instead of setting a field)."""
    from s5cli.cli import curate_cmd, evaluate_cmd, finetune_cmd, predict_cmd, pretrain_cmd
    from s5cli.curation.config import CurateConfig
    from s5cli.evaluation.config import EvaluateConfig
    from s5cli.finetune.config import FinetuneConfig
    from s5cli.inference.config import PredictConfig
    from s5cli.pretrain.config import PretrainConfig

    return [
        ("predict", predict_cmd.OPTION_FIELDS, PredictConfig, {"config", "json_out"}),
        ("pretrain", pretrain_cmd.OPTION_FIELDS, PretrainConfig, {"config"}),
        ("finetune", finetune_cmd.OPTION_FIELDS, FinetuneConfig, {"config"}),
        ("evaluate", evaluate_cmd.OPTION_FIELDS, EvaluateConfig, {"config", "json_out"}),
        ("curate", curate_cmd.OPTION_FIELDS, CurateConfig, {"inputs", "output", "report", "merge", "config",
                                                            "overwrite", "resume", "json_out"}),
    ]  # fmt: skip


def test_every_option_sets_exactly_one_config_field() -> None:
    import typer.main

    commands = typer.main.get_command(app).commands
    for name, table, cls, steering in _tables():
        params = {p.name for p in commands[name].params} - {"help"}
        assert params - steering == set(table), name  # every option is mapped, the table names no stale one
        fields = [spec if isinstance(spec, str) else spec[0] for spec in table.values()]
        assert len(set(fields)) == len(fields), name  # one field per option
        assert [f for f in fields if not _field_exists(cls, f)] == [], name
    # and back: every field of these configs can be set from the command line
    for name, table, cls, _ in _tables():
        if name in ("predict", "curate"):
            fields = {spec if isinstance(spec, str) else spec[0] for spec in table.values()}
            assert fields == set(cls.model_fields), name


def test_usage_errors_are_one_line(runner) -> None:
    for args in (
        ["predictx"],
        ["predict", "--tile-size", "big", "a.tif"],
        ["export", "x.pt"],
        ["demo", "--scene-size", "100"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: s5"), (args, result.output)


def test_global_flags_may_follow_the_command(runner) -> None:
    result = runner.invoke(app, ["models", "--json", "-q"])
    assert result.exit_code == 0, result.output


def test_flags_show_as_flags_in_help(runner) -> None:
    result = runner.invoke(app, ["predict", "--help"], terminal_width=200)
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if "--probs" in line)
    assert "<bool>" not in line and "Also write" in line

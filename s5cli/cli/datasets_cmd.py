"""`s5 datasets`: the dataset registry, and what a data root holds."""

from __future__ import annotations

import json

import typer

from s5cli.cli.options import DataRootOpt, DatasetsOpt, JsonOpt, split_names


def datasets(data_root: DataRootOpt = None, names: DatasetsOpt = None, as_json: JsonOpt = False) -> None:
    """List the datasets s5 reads; with --data-root, which are there and how many samples each split has.

    $ s5 datasets --data-root /data --datasets potsdam,loveda --json
    """
    from s5cli.datasets.survey import survey

    # Named datasets are checked strictly: one that is missing or not in its layout exits 2.
    entries = survey(data_root, split_names(names))
    if as_json:
        payload = {"data_root": str(data_root) if data_root else None, "datasets": entries}
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"datasets under {data_root}" if data_root else "datasets")
    for column in ("name", "task", "classes", "metric"):
        table.add_column(column, no_wrap=True)
    table.add_column("samples per split" if data_root else "splits")
    for e in entries:
        row = [e["name"], e["task"], str(e["num_classes"] or "-"), e["metric"]]
        if not data_root:
            row.append(", ".join(e["splits"]))
        elif e["found"] is None:
            row.append("(given by a dataset YAML)")
        elif not e["folder"]:
            row.append("not found")
        else:
            row.append(", ".join(f"{k} {'?' if v is None else v}" for k, v in e["samples"].items()))
        table.add_row(*row)
    Console(soft_wrap=True).print(table)
    if data_root:
        for e in entries:
            for split, problem in (e.get("problems") or {}).items():
                typer.echo(f"{e['name']} {split}: {problem}", err=True)

"""`modelops datasets upload|list|show|versions|rows|query`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .app import JsonFlag, emit_json, out, target

app = typer.Typer(no_args_is_help=True, help="Versioned datasets: upload, browse, query with SQL.")


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> Table:
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row.get(column, "")) for column in columns))
    return table


@app.command()
def upload(
    ctx: typer.Context,
    name: str,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".jsonl, .csv or .parquet")],
    schema: Annotated[str, typer.Option(help="sft, chat, preference, multiple_choice or routing")] = "chat",
    as_json: JsonFlag = False,
) -> None:
    """Upload FILE as a new version of dataset NAME (the first upload creates it)."""
    with target(ctx).client() as client:
        dataset = client.datasets.upload(name, schema, path)
    if as_json:
        emit_json(dataset)
    else:
        out.print(f"{dataset.name} v{dataset.version}: {dataset.num_rows} rows ({dataset.dataset_id})")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every dataset at its latest version."""
    with target(ctx).client() as client:
        datasets = [d.model_dump(mode="json", by_alias=True) for d in client.datasets.list()]
    if as_json:
        emit_json(datasets)
    else:
        out.print(_table(datasets, ["name", "version", "schema", "num_rows", "size_bytes", "dataset_id"]))


@app.command()
def show(
    ctx: typer.Context, name: str, version: Annotated[int | None, typer.Option()] = None, as_json: JsonFlag = False
) -> None:
    """One version of a dataset (default: the latest)."""
    with target(ctx).client() as client:
        dataset = client.datasets.show(name, version)
    if as_json:
        emit_json(dataset)
    else:
        for field, value in dataset.model_dump(mode="json", by_alias=True).items():
            out.print(f"{field}: {value}")


@app.command()
def versions(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """A dataset's history, newest first."""
    with target(ctx).client() as client:
        history = client.datasets.versions(name)
    if as_json:
        emit_json(history)
    else:
        rows = [v.model_dump(mode="json") for v in history.data]
        out.print(_table(rows, ["version", "timestamp", "rows_added", "num_rows", "created_by"]))


@app.command()
def rows(
    ctx: typer.Context,
    name: str,
    version: Annotated[int | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 20,
    offset: Annotated[int, typer.Option()] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Rows of a dataset version, oldest upload first."""
    with target(ctx).client() as client:
        page = client.datasets.rows(name, version, limit, offset)
    if as_json:
        emit_json(page)
    else:
        out.print(_table(page.rows))


@app.command()
def query(
    ctx: typer.Context,
    name: str,
    sql: Annotated[str, typer.Argument(help="One SELECT over the table `dataset`")],
    version: Annotated[int | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a read-only SQL query over a dataset version."""
    with target(ctx).client() as client:
        result = client.datasets.query(name, sql, version)
    if as_json:
        emit_json(result)
    else:
        out.print(_table(result.rows, [column.name for column in result.columns]))

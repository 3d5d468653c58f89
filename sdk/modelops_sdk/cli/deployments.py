"""`modelops deploy create|list|show|rm`, and `modelops chat`, which streams a deployed model's answer."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..models import DeploymentStatus, DeploymentView
from .app import JsonFlag, emit_json, out, target
from .app import app as root

FAILED = 1  # a deployment that failed to load, under `create --wait`: a user error

app = typer.Typer(no_args_is_help=True, help="Serve a base model with adapters under a name, and stop serving it.")


def _table(views: list[DeploymentView]) -> Table:
    table = Table("name", "status", "base model", "adapters", "models", "reason")
    for view in views:
        adapters = ", ".join(view.adapter_ids or view.adapters)
        table.add_row(view.name, view.status, view.base_model, adapters, ", ".join(view.models or []), view.reason)
    return table


@app.command()
def create(
    ctx: typer.Context,
    name: str,
    base: Annotated[str, typer.Option("--base", help="The base model's artifact id")],
    adapter: Annotated[
        list[str] | None, typer.Option("--adapter", help="An adapter's artifact id (repeatable)")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until it is ready (or failed)")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 300,
    as_json: JsonFlag = False,
) -> None:
    """Serve BASE with the adapters under NAME; deploying a name again replaces it."""
    adapters = adapter or []
    with target(ctx).client() as client:
        accepted = client.deployments.create(name, base, adapters)
        if not wait:
            emit_json(accepted) if as_json else out.print(f"{accepted.name}: {accepted.status}")
            return
        view = client.deployments.wait(name, adapters, timeout_s=timeout)
    if as_json:
        emit_json(view)
    elif view.status == DeploymentStatus.failed:
        out.print(f"{view.name}: failed: {view.reason}")
    else:
        out.print(f"{view.name}: ready, answers to {', '.join(view.models or [])}")
    if view.status == DeploymentStatus.failed:
        raise typer.Exit(FAILED)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every deployment, with its status."""
    with target(ctx).client() as client:
        views = client.deployments.list()
    emit_json(views) if as_json else out.print(_table(views))


@app.command()
def show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """One deployment: status, the models it answers to, why it failed."""
    with target(ctx).client() as client:
        view = client.deployments.show(name)
    emit_json(view) if as_json else out.print(_table([view]))


@app.command()
def rm(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Stop serving NAME."""
    with target(ctx).client() as client:
        removal = client.deployments.delete(name)
    emit_json(removal) if as_json else out.print(f"{removal.name}: {removal.status}")


@root.command()
def chat(
    ctx: typer.Context,
    model: str,
    question: str,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens")] = None,
    temperature: Annotated[float | None, typer.Option(help="0 answers greedily")] = None,
) -> None:
    """Ask MODEL (a deployment, `<deployment>/<adapter>` or an `ft:` name) QUESTION; the answer streams."""
    chosen = {"max_tokens": max_tokens, "temperature": temperature}
    sampling = {name: value for name, value in chosen.items() if value is not None}
    with target(ctx).client() as client:
        for piece in client.chat.stream(model, question, **sampling):
            print(piece, end="", flush=True)  # plain print: rich would buffer and wrap
    print()

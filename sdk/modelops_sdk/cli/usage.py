"""`modelops usage [--by key|job|deployment]`: what jobs and deployments used and cost; `modelops usage budget KEY
AMOUNT` (admin) sets a key holder's budget, `--remove` lifts it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .app import JsonFlag, emit_json, out, target

app = typer.Typer(help="Usage and cost per key, job or deployment; budgets (admin).")


@app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(help="key, job or deployment")] = "key",
    key: Annotated[str | None, typer.Option(help="Only this key holder's (default: yours; admin: everyone's)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Usage summed per key, job or deployment, the costliest first."""
    if ctx.invoked_subcommand is not None:
        return
    with target(ctx).client() as client:
        found = client.usage.report(by, key=key, limit=limit)
    if as_json:
        emit_json(found)
        return
    what = {"key": "key", "job": "job", "deployment": "deployment"}[by]
    table = Table(
        what, "CPU s", "GPU s", "peak MiB", "tokens", "cost", *(("budget", "committed") if by == "key" else ())
    )
    for row in found.data:
        name = {"key": row.key, "job": f"{row.job_id} ({row.kind})", "deployment": row.deployment}[by]
        cells = [
            str(name),
            f"{row.cpu_seconds:.1f}",
            f"{row.gpu_seconds:.1f}",
            f"{row.peak_memory_bytes / 2**20:.0f}",
            str(row.tokens),
            f"{row.cost:.6f} {row.currency}",
        ]
        if by == "key":
            cells += ["-" if row.budget is None else f"{row.budget:.6f}", f"{row.committed or 0:.6f}"]
        table.add_row(*cells)
    out.print(table)


@app.command()
def budget(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The API key holder's name")],
    amount: Annotated[float | None, typer.Argument(help="In the gateway's price currency")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Lift the budget")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set (or with --remove lift) a key holder's budget (admin): jobs whose estimate would pass it are refused."""
    if remove == (amount is not None):
        raise typer.BadParameter("give an AMOUNT, or --remove")
    with target(ctx).client() as client:
        if remove:
            client.usage.remove_budget(key)
            out.print(f"budget of {key} lifted")
            return
        assert amount is not None
        view = client.usage.set_budget(key, amount)
    if as_json:
        emit_json(view)
    else:
        out.print(f"budget of {view.key}: {view.amount} {view.currency}")

"""`modelops market`: adapters and quantized models others published — search, show, check against your base,
install as a deployment, rate."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .app import JsonFlag, emit_json, out, target

app = typer.Typer(no_args_is_help=True, help="The marketplace: search, show, check compatibility, install, rate.")


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(help="Full text over title, description and card")] = None,
    base_model: Annotated[str | None, typer.Option(help="Only listings for this base (id, name or digest)")] = None,
    task: Annotated[str | None, typer.Option()] = None,
    quantization: Annotated[str | None, typer.Option(help="e.g. Q4_K_M")] = None,
    min_rating: Annotated[float | None, typer.Option(min=1, max=5)] = None,
    sort: Annotated[str, typer.Option(help="downloads, rating, recent or relevance")] = "downloads",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Search the listings."""
    with target(ctx).client() as client:
        page = client.marketplace.search(
            query,
            sort=sort,
            limit=limit,
            base_model=base_model,
            task=task,
            quantization=quantization,
            min_rating=min_rating,
        )
    if as_json:
        emit_json(page)
        return
    table = Table("listing", "title", "base", "kind", "rating", "downloads", "installs", "verified")
    for listing in page.data:
        rating = f"{listing.rating.average:.1f} ({listing.rating.count})" if listing.rating.count else "-"
        table.add_row(
            listing.id,
            listing.title,
            listing.base_model_name or listing.base_model or "-",
            listing.kind.value,
            rating,
            str(listing.downloads),
            str(listing.installs),
            "✓" if listing.verified else "✗",
        )
    out.print(table)
    out.print(f"{len(page.data)} of {page.total}")


@app.command()
def show(ctx: typer.Context, listing: Annotated[str, typer.Argument()], as_json: JsonFlag = False) -> None:
    """One listing with its card."""
    with target(ctx).client() as client:
        found = client.marketplace.show(listing)
    if as_json:
        emit_json(found)
        return
    out.print(f"[bold]{found.title}[/bold] — {found.id} ({found.kind.value}), signed by key {found.key_id}")
    out.print(found.card)


@app.command()
def check(
    ctx: typer.Context,
    listing: Annotated[str, typer.Argument()],
    base_model: Annotated[str | None, typer.Option(help="The base model artifact to check against")] = None,
    deployment: Annotated[str | None, typer.Option(help="Or: the base a deployment serves")] = None,
    canary: Annotated[bool, typer.Option(help="Also run the adapter on the base")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Whether a listing works on your base model, and why not; exits 1 when it does not."""
    with target(ctx).client() as client:
        verdict = client.marketplace.check(listing, base_model=base_model, deployment=deployment, canary=canary)
    if as_json:
        emit_json(verdict)
    else:
        for item in verdict.checks:
            out.print(f"{'✓' if item.ok else '✗'} {item.name}: {item.detail}")
        out.print("compatible" if verdict.compatible else "[red]not compatible[/red]")
    if not verdict.compatible:
        raise typer.Exit(1)


@app.command()
def install(
    ctx: typer.Context,
    listing: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option(help="The deployment's name")],
    base_model: Annotated[str | None, typer.Option(help="For an adapter: the base to serve it on")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a listing (checked against the base first)."""
    with target(ctx).client() as client:
        accepted = client.marketplace.install(listing, name, base_model=base_model)
    if as_json:
        emit_json(accepted)
    else:
        out.print(f"deployment {accepted.name}: {accepted.status}")


@app.command()
def rate(
    ctx: typer.Context,
    listing: Annotated[str, typer.Argument()],
    stars: Annotated[int, typer.Argument(min=1, max=5)],
    review: Annotated[str, typer.Option()] = "",
    as_json: JsonFlag = False,
) -> None:
    """Rate a listing; rating again replaces your rating."""
    with target(ctx).client() as client:
        given = client.marketplace.rate(listing, stars, review)
    if as_json:
        emit_json(given)
    else:
        out.print(f"{given.listing}: {given.rating.average} from {given.rating.count} ratings")

"""`modelops router train|deploy|stats|correct|feedback`: a spiking router in front of deployments and RAG
collections — train it on routing rows, deploy it with a route per target, read how it decides, correct it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..models import DeploymentStatus
from .app import JsonFlag, emit_json, err, out, target
from .jobs import follow

app = typer.Typer(no_args_is_help=True, help="Routers: train, deploy, stats, correct, feedback rows.")

FAILED = 1


@app.command()
def train(
    ctx: typer.Context,
    embedding_model: Annotated[str, typer.Option(help="The embedding_model artifact (id or name) that reads prompts")],
    dataset: Annotated[str, typer.Option(help="A routing dataset (rows: prompt, target)")],
    dataset_version: Annotated[int | None, typer.Option()] = None,
    epochs: Annotated[float, typer.Option(min=1)] = 40,
    fallback: Annotated[str | None, typer.Option(help="The target of an uncertain decision")] = None,
    min_margin: Annotated[int, typer.Option(min=0, help="Spike-count margin below which the fallback answers")] = 1,
    suffix: Annotated[str | None, typer.Option(help="The router artifact's name")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to its end")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train a spiking router (a `snn_router` job)."""
    network: dict[str, Any] = {"min_margin": min_margin, **({"fallback": fallback} if fallback else {})}
    with target(ctx).client() as client:
        accepted = client.routers.train(
            embedding_model, dataset, dataset_version=dataset_version, epochs=epochs, suffix=suffix, **network
        )
        if as_json and not wait:
            emit_json(accepted)
        elif not as_json:
            err.print(f"queued {accepted.id}")
        if wait:
            follow(client, accepted.id, as_json)


@app.command()
def deploy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model name clients will call")],
    router: Annotated[str, typer.Argument(help="The router artifact (id or name)")],
    route: Annotated[
        list[str],
        typer.Option(help="TARGET=DEPLOYMENT, or TARGET=DEPLOYMENT:COLLECTION to answer from a RAG collection"),
    ],
    timeout: Annotated[float, typer.Option(help="Seconds to wait until it is ready")] = 300,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a router under NAME, with one --route for each of its targets."""
    routes: dict[str, dict[str, str]] = {}
    for item in route:
        label, _, answerer = item.partition("=")
        deployment, _, collection = answerer.partition(":")
        if not label or not deployment:
            raise typer.BadParameter(f"{item!r} is not TARGET=DEPLOYMENT[:COLLECTION]", param_hint="--route")
        routes[label] = {"deployment": deployment, **({"collection": collection} if collection else {})}
    with target(ctx).client() as client:
        client.deployments.create(name, router, routes=routes)
        view = client.deployments.wait(name, timeout_s=timeout)
    if as_json:
        emit_json(view)
    elif view.status == DeploymentStatus.failed:
        out.print(f"{view.name}: failed: {view.reason}")
    else:
        out.print(f"{view.name}: ready, routing to {', '.join(sorted(routes))}")
    if view.status == DeploymentStatus.failed:
        raise typer.Exit(FAILED)


@app.command()
def stats(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """How the router decided: requests per target, fallbacks, mean margin, corrections."""
    with target(ctx).client() as client:
        found = client.routers.stats(name)
    if as_json:
        emit_json(found)
        return
    table = Table("target", "decisions", "share")
    for label, count in sorted(found.by_target.items(), key=lambda item: -item[1]):
        table.add_row(label, str(count), f"{count / found.decisions:.0%}")
    out.print(table)
    margin = "-" if found.mean_margin is None else f"{found.mean_margin:.2f}"
    out.print(
        f"{found.decisions} decisions, {found.fallbacks} fallbacks, mean margin {margin}, {found.corrected} corrected"
    )


@app.command()
def correct(
    ctx: typer.Context,
    name: str,
    decision: Annotated[str, typer.Argument(help="The decision id (the X-ModelOps-Route-Decision header)")],
    prompt: Annotated[str, typer.Option(help="The prompt exactly as sent")],
    to: Annotated[str, typer.Option("--to", help="The target that should have answered")],
) -> None:
    """Mark a decision wrong; it becomes a row of `modelops router feedback`."""
    with target(ctx).client() as client:
        client.routers.correct(name, decision, prompt, to)
    out.print(f"{decision}: should have gone to {to}")


@app.command()
def feedback(
    ctx: typer.Context,
    name: str,
    output: Annotated[Path, typer.Option("--out", help="Write the rows here as JSONL")],
) -> None:
    """The corrections as routing rows (JSONL): add them to the training rows and train the next router."""
    with target(ctx).client() as client:
        rows = client.routers.feedback(name)
    output.write_text("".join(json.dumps(row.model_dump()) + "\n" for row in rows))
    out.print(f"{len(rows)} rows written to {output}")

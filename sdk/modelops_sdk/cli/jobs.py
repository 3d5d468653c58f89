"""`modelops jobs train|list|show|events|cancel|wait`: `train --wait` and `wait` draw a live progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .._sync.client import Client
from ..events import JobEvent
from ..models import JobStatus, JobView
from .app import JsonFlag, emit_json, err, out, target

app = typer.Typer(no_args_is_help=True, help="Fine-tuning jobs: submit, follow, cancel.")

FAILED = 1  # a job that failed or was cancelled, under `wait`: the documented user-error code


def _summary(job: JobView) -> Table:
    table = Table("field", "value", show_header=False)
    progress = f"{job.progress.step or 0}/{job.progress.total_steps or '?'}"
    for name, value in (
        ("id", job.id),
        ("status", job.status),
        ("base model", job.base_model_id),
        ("dataset", f"{job.dataset} v{job.dataset_version}"),
        ("progress", progress),
        ("loss", job.loss),
        ("adapter", job.adapter_artifact_id),
        ("failure", job.failure.reason if job.failure else None),
    ):
        table.add_row(name, "" if value is None else str(value))
    return table


def follow(client: Client, job_id: str, as_json: bool) -> None:
    """Stream the job's events to its end (a progress bar, or one JSON line per event); exit 1 unless it completed."""
    if as_json:
        job = client.jobs.wait(job_id, lambda event: print(event.model_dump_json()))
    else:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err) as progress:
            task = progress.add_task(job_id, total=None, loss="-", tps="-")

            def draw(event: JobEvent) -> None:
                data = event.data
                if event.type in ("started", "progressed"):
                    fields: dict[str, Any] = {"total": data.get("total_steps"), "completed": data.get("step") or 0}
                    if data.get("loss") is not None:
                        fields |= {"loss": f"{data['loss']:.4f}", "tps": f"{data.get('tokens_per_second', 0):.0f}"}
                    progress.update(task, **fields)
                progress.update(task, description=f"{job_id} {event.type}")

            job = client.jobs.wait(job_id, draw)
        out.print(_summary(job))
    if as_json:
        emit_json(job)
    if job.status != JobStatus.completed:
        raise typer.Exit(FAILED)


@app.command()
def train(
    ctx: typer.Context,
    base_model: Annotated[str, typer.Option(help="A base_model artifact id or name")],
    dataset: Annotated[str, typer.Option(help="A registered dataset's name")],
    dataset_version: Annotated[int | None, typer.Option()] = None,
    method: Annotated[str, typer.Option(help="sft or dpo (snn_router: see `modelops router train`)")] = "sft",
    max_steps: Annotated[int | None, typer.Option(help="Train this many steps (or give --epochs)")] = None,
    epochs: Annotated[float | None, typer.Option()] = None,
    workers: Annotated[int | None, typer.Option(help="Processes training together (data parallel)")] = None,
    spec: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="A JSON training request; options override it")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to its end")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Submit a fine-tuning job."""
    fields: dict[str, Any] = json.loads(spec.read_text()) if spec else {}
    fields |= {"base_model": base_model, "dataset": dataset, "method": method}
    if dataset_version is not None:
        fields["dataset_version"] = dataset_version
    chosen = {"max_steps": max_steps, "epochs": epochs}
    fields["hyperparameters"] = fields.get("hyperparameters", {}) | {k: v for k, v in chosen.items() if v is not None}
    if workers is not None:
        fields["resources"] = fields.get("resources", {}) | {"workers": workers}
    with target(ctx).client() as client:
        accepted = client.jobs.train(**fields)
        if as_json and not wait:
            emit_json(accepted)
        elif not as_json:
            err.print(f"queued {accepted.id}")
        if wait:
            follow(client, accepted.id, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Jobs, newest first."""
    with target(ctx).client() as client:
        jobs = [job for _, job in zip(range(limit), client.jobs.list(status=status), strict=False)]
    if as_json:
        emit_json(jobs)
        return
    table = Table("id", "status", "base model", "dataset", "step", "loss", "created")
    for job in jobs:
        step = f"{job.progress.step or 0}/{job.progress.total_steps or '?'}"
        table.add_row(job.id, job.status, job.base_model, job.dataset, step, str(job.loss or ""), str(job.created_at))
    out.print(table)


@app.command()
def show(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """One job: status, progress, loss, adapter, failure."""
    with target(ctx).client() as client:
        job = client.jobs.show(job_id)
    if as_json:
        emit_json(job)
    else:
        out.print(_summary(job))


@app.command()
def events(
    ctx: typer.Context,
    job_id: str,
    after: Annotated[int | None, typer.Option(help="Resume after this event id")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The job's events as they happen, until its end."""
    with target(ctx).client() as client:
        for event in client.jobs.stream(job_id, after):
            if as_json:
                print(event.model_dump_json())
            else:
                out.print(f"{event.id:>5} {event.at:%H:%M:%S} {event.type:<12} {json.dumps(event.data)}")


@app.command()
def cancel(
    ctx: typer.Context, job_id: str, reason: Annotated[str, typer.Option()] = "", as_json: JsonFlag = False
) -> None:
    """Ask the job's worker to stop."""
    with target(ctx).client() as client:
        job = client.jobs.cancel(job_id, reason)
    if as_json:
        emit_json(job)
    else:
        out.print(f"cancel requested for {job.id} ({job.status})")


@app.command()
def wait(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """Follow a job to its end with a progress bar; exit 1 unless it completed."""
    with target(ctx).client() as client:
        follow(client, job_id, as_json)

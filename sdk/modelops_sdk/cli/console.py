"""`modelops console jobs|flow|topics|groups|dead-letters|replay`: what the web console (/ui) shows, in the terminal —
jobs of every kind, a job's path across services, topics and consumer lag, dead letters and their replay."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .app import JsonFlag, emit_json, out, target

app = typer.Typer(no_args_is_help=True, help="Jobs, a job's flow across services, topics, consumer lag, dead letters.")


@app.command()
def jobs(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="training, quantization, evaluation or indexing")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The latest jobs of every kind with their status."""
    with target(ctx).client() as client:
        found = client.console.jobs(kind, limit)
    if as_json:
        emit_json(found)
        return
    table = Table("job", "kind", "status", "submitted", "last event", "trace")
    for job in found:
        event = job.last_event.split(".")[-2]
        table.add_row(job.id, job.kind, job.status, f"{job.submitted_at:%Y-%m-%d %H:%M:%S}", event, job.trace_id or "-")
    out.print(table)


@app.command()
def flow(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """A job's messages across services, in order, with the gap between hops and the trace they carry."""
    with target(ctx).client() as client:
        found = client.console.flow(job_id)
    if as_json:
        emit_json(found)
        return
    table = Table("time (UTC)", "gap", "service", "message", "topic", "trace")
    for hop in found.hops:
        gap = "-" if hop.gap_s is None else f"{hop.gap_s * 1000:.0f} ms"
        place = f"{hop.topic}[{hop.partition}]@{hop.offset}"
        table.add_row(
            f"{hop.at:%H:%M:%S.%f}"[:-3], gap, hop.service or "-", hop.type or "-", place, hop.trace_id or "-"
        )
    out.print(table)
    for trace_id in found.trace_ids:
        out.print(f"trace {trace_id}" + (f": {found.trace_url.format(trace_id=trace_id)}" if found.trace_url else ""))


@app.command()
def topics(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every catalog topic with its messages and end offsets; dead-letter topics that hold any."""
    with target(ctx).client() as client:
        found = client.console.topics()
    if as_json:
        emit_json(found)
        return
    table = Table("topic", "partitions", "messages", "end offsets", "producers → consumers")
    for topic in found:
        if topic.dead_letter_topic and not topic.messages:
            continue
        ends = " ".join(str(p.latest) for p in topic.partitions)
        flow_of = f"{', '.join(topic.producers) or '-'} → {', '.join(topic.consumers) or 'operators'}"
        table.add_row(topic.name, str(len(topic.partitions)), str(topic.messages), ends, flow_of)
    out.print(table)


@app.command()
def groups(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every consumer group with its lag, and the partitions it is behind on."""
    with target(ctx).client() as client:
        found = client.console.groups()
    if as_json:
        emit_json(found)
        return
    table = Table("group", "lag", "behind on")
    for group in found:
        behind = [f"{p.topic}[{p.partition}] {p.lag}" for p in group.partitions if p.lag]
        table.add_row(group.group, str(group.lag), ", ".join(behind) or "-")
    out.print(table)


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=200)] = 50, as_json: JsonFlag = False
) -> None:
    """The latest dead letters (admin): where each came from, which consumer gave up on it, and why."""
    with target(ctx).client() as client:
        found = client.console.dead_letters(limit)
    if as_json:
        emit_json(found)
        return
    table = Table("failed", "original", "consumer", "error")
    for letter in found:
        headers = letter.headers
        original = f"{headers.get('dlq_original_topic')}[{headers.get('dlq_original_partition')}]"
        error = f"{headers.get('dlq_error_type', '')}: {headers.get('dlq_error', '')[:120]}"
        table.add_row(headers.get("dlq_failed_at", "-"), original, headers.get("dlq_consumer", "-"), error)
    out.print(table)


@app.command()
def replay(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="The original topic, e.g. training.events.v1")],
    consumer: Annotated[str | None, typer.Option(help="Only what this consumer group dead-lettered")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be replayed; send nothing")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Publish a topic's dead letters again after a fix (admin); each is replayed once."""
    with target(ctx).client() as client:
        sent = client.console.replay(topic, consumer, dry_run=dry_run)
    if as_json:
        emit_json(sent)
        return
    for letter in sent:
        out.print(f"{'would replay' if dry_run else 'replayed'} offset {letter.offset} → {letter.topic}")
    out.print(f"{len(sent)} dead letter(s) {'to replay' if dry_run else 'replayed'}")

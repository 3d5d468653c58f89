"""`modelops eval run|compare`: score a model, adapter or deployment on a suite (a signed eval report), and put two
reports side by side with a paired bootstrap interval of each difference."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import EvaluationFailed
from .app import JsonFlag, emit_json, err, out, target

app = typer.Typer(no_args_is_help=True, help="Evaluate models on suites (signed eval reports) and compare them.")
SHOWN_DISAGREEMENTS = 10


def _metric(text: str) -> str | dict[str, object]:
    """`exact_match`, or `regex_match={"pattern": "^\\d+$"}`: a name and its parameters as JSON."""
    name, _, params = text.partition("=")
    return {"name": name, "params": json.loads(params)} if params else name


@app.command()
def run(
    ctx: typer.Context,
    suite: Annotated[str, typer.Argument(help="The dataset whose rows (sft or chat) are the items")],
    metric: Annotated[
        list[str],
        typer.Option(
            "--metric",
            "-m",
            help='Repeat for several: exact_match, normalized_match, regex_match={"pattern": "…"}, json_valid, '
            "rouge_l, perplexity, or a plugin's name",
        ),
    ],
    model: Annotated[str | None, typer.Option(help="A base or merged model (id, or name: its latest)")] = None,
    adapter: Annotated[str | None, typer.Option(help="An adapter of that model (or of the deployment)")] = None,
    deployment: Annotated[str | None, typer.Option(help="Evaluate through this deployment instead")] = None,
    suite_version: Annotated[int | None, typer.Option(help="The suite's version; default the latest")] = None,
    seed: Annotated[int, typer.Option(help="Picks the sample with --max-items")] = 0,
    max_items: Annotated[int | None, typer.Option(help="Score a seeded sample of this many items")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer per item")] = 128,
    wait: Annotated[bool, typer.Option(help="Wait for the job and print the report's aggregates")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 1800,
    as_json: JsonFlag = False,
) -> None:
    """Score a model (with an adapter or not) or a deployment on SUITE: a signed eval_report."""
    with target(ctx).client() as client:
        job = client.evaluations.submit(
            suite,
            [_metric(m) for m in metric],
            model=model,
            adapter=adapter,
            deployment=deployment,
            suite_version=suite_version,
            seed=seed,
            max_items=max_items,
            max_new_tokens=max_new_tokens,
        )
        if wait:
            if not as_json:
                err.print(f"job {job.id}: {job.status.value}; evaluating on {job.suite} v{job.suite_version}…")
            try:
                job = client.evaluations.wait(job.id, timeout_s=timeout)
            except EvaluationFailed as error:
                err.print(f"[red]error[/red] {error}")
                err.print(f"  what to do: {error.hint}")
                raise typer.Exit(1) from None
    if as_json:
        emit_json(job)
        return
    if not wait:
        out.print(f"job {job.id}: {job.status.value}")
        return
    table = Table("metric", "value", title=f"report {job.report_id}")
    for name, value in (job.metrics or {}).items():
        table.add_row(name, f"{value:.4g}")
    out.print(table)


@app.command()
def compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="An eval report, or a model or adapter (its newest report on --suite)")],
    b: Annotated[str, typer.Argument(help="Another, compared with A")],
    suite: Annotated[str | None, typer.Option(help="The suite, when A and B are models or adapters")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A and B side by side: each metric, B - A with a 95 % paired bootstrap interval, and where they disagree."""
    with target(ctx).client() as client, tempfile.TemporaryDirectory() as scratch:
        comparison = client.evaluations.compare(a, b, suite, scratch=Path(scratch))
    if as_json:
        emit_json(dataclasses.asdict(comparison))
        return
    table = Table("metric", "A", "B", "B - A", "95 % interval", "items", title=f"on {comparison.suite}")
    for row in comparison.metrics:
        mark = " *" if row.significant else ""
        interval = f"[{row.low:+.3f}, {row.high:+.3f}]{mark}"
        table.add_row(row.metric, f"{row.a:.3f}", f"{row.b:.3f}", f"{row.difference:+.3f}", interval, str(row.items))
    out.print(f"A = {comparison.report_a}, B = {comparison.report_b}")
    out.print(table)
    out.print(f"{len(comparison.disagreements)} items scored differently (* : the interval excludes 0)")
    shown = Table("item", "reference", "A answered", "B answered")
    for item in comparison.disagreements[:SHOWN_DISAGREEMENTS]:
        shown.add_row(str(item.item), item.reference[:60], (item.answer_a or "")[:60], (item.answer_b or "")[:60])
    if comparison.disagreements:
        out.print(shown)

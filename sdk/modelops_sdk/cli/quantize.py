"""`modelops quantize`: a base model, with an adapter merged into it or not, written as GGUF in llama.cpp's formats;
waits for the job and prints each signed quantized_model with its quality figures."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import QuantizationFailed
from ..models import QuantizationFormat
from .app import JsonFlag, app, emit_json, err, out, target


@app.command()
def quantize(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The base_model artifact id (or name: its latest)")],
    formats: Annotated[
        list[QuantizationFormat],
        typer.Option(
            "--format",
            "-f",
            help="Repeat for several: F16, Q8_0, Q5_K_M, Q4_K_M, Q4_0, LORA_F16; AWQ_W4A16, GPTQ_W4A16 (GPU worker)",
        ),
    ],
    adapter: Annotated[str | None, typer.Option(help="An adapter of that base, merged before quantizing")] = None,
    name: Annotated[str | None, typer.Option(help="The outputs' name; default <model>[-<adapter>]")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job and print its outputs")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 1800,
    as_json: JsonFlag = False,
) -> None:
    """Quantize a model (or a fine-tuned adapter merged into it): each format a signed quantized_model."""
    with target(ctx).client() as client:
        job = client.quantizations.submit(model, formats, adapter=adapter, name=name)
        for warning in job.warnings:
            err.print(f"[yellow]warning[/yellow] {warning}")
        if wait:
            if not as_json:
                err.print(f"job {job.id}: {job.status.value}; quantizing {', '.join(f.value for f in formats)}…")
            try:
                job = client.quantizations.wait(job.id, timeout_s=timeout)
            except QuantizationFailed as error:
                err.print(f"[red]error[/red] {error}")
                err.print(f"  what to do: {error.hint}")
                raise typer.Exit(1) from None
    if as_json:
        emit_json(job)
        return
    if not wait:
        out.print(f"job {job.id}: {job.status.value}")
        return
    table = Table("format", "artifact", "perplexity change", "size vs F16", "tokens/s")
    for output in job.outputs:
        metrics = output.metrics or {}
        table.add_row(
            output.format.value,
            output.artifact_id,
            f"{metrics['perplexity_change']:+.2%}",
            f"{metrics['size_ratio_f16']:.2f}",
            f"{metrics['tokens_per_second']:.1f}",
        )
    out.print(table)

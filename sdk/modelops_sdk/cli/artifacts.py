"""`modelops artifacts list|show|lineage|import|download|promote|verify`; `verify` trusts only the registry's
public keys and checks the signature and every file digest on this machine."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from ..models import LineageGraph
from ..verify import check_files, pem_blocks, verify_bundle
from .app import JsonFlag, emit_json, err, out, target

VERIFY_FAILED = 3  # the documented exit code

app = typer.Typer(no_args_is_help=True, help="Signed artifacts: import, browse, lineage, promote, verify.")


@app.command("list")
def list_(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Registered artifacts, newest first."""
    with target(ctx).client() as client:
        found = client.artifacts.list(kind=kind, stage=stage, name=name)
        artifacts = [artifact for _, artifact in zip(range(limit), found, strict=False)]
    if as_json:
        emit_json(artifacts)
        return
    table = Table("id", "kind", "name", "version", "stage", "created")
    for a in artifacts:
        table.add_row(a.id, a.kind.value, a.name, a.version, a.stage.value, a.created_at.isoformat())
    out.print(table)


@app.command()
def show(ctx: typer.Context, artifact_id: str, as_json: JsonFlag = False) -> None:
    """One artifact and its files."""
    with target(ctx).client() as client:
        artifact = client.artifacts.show(artifact_id)
    if as_json:
        emit_json(artifact)
        return
    for field, value in artifact.model_dump(mode="json").items():
        out.print(f"{field}: {value}")


def lineage_tree(lineage: LineageGraph) -> Tree:
    """Ancestors (what it came from) and descendants (what came of it) as nested branches."""
    parents, children = defaultdict(list), defaultdict(list)
    for edge in lineage.ancestors:
        parents[edge.child_id].append((edge.parent_id, edge.relation.value))
    for edge in lineage.descendants:
        children[edge.parent_id].append((edge.child_id, edge.relation.value))
    root = Tree(f"[bold]{lineage.artifact_id}[/bold]")

    def grow(branch: Tree, node: str, edges: dict[str, list[tuple[str, str]]], path: frozenset[str]) -> None:
        for other, relation in edges[node]:
            if other not in path:  # lineage is acyclic, but a bad record must not hang the CLI
                grow(branch.add(f"{other} [dim]({relation})[/dim]"), other, edges, path | {other})

    start = frozenset({lineage.artifact_id})
    grow(root.add("came from"), lineage.artifact_id, parents, start)
    grow(root.add("led to"), lineage.artifact_id, children, start)
    return root


@app.command()
def lineage(ctx: typer.Context, artifact_id: str, as_json: JsonFlag = False) -> None:
    """Where the artifact came from and what came of it, as a tree."""
    with target(ctx).client() as client:
        graph = client.artifacts.lineage(artifact_id)
    if as_json:
        emit_json(graph)
    else:
        out.print(lineage_tree(graph))


@app.command("import")
def import_(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Every file under it is uploaded")],
    kind: Annotated[str, typer.Option(help="base_model, adapter, dataset, …")],
    name: Annotated[str, typer.Option()],
    version: Annotated[str | None, typer.Option()] = None,
    parent: Annotated[
        list[str] | None, typer.Option(help="ID or ID:relation (default trained_from); repeatable")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the registry registered it")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Import a directory as an artifact; the registry hashes, signs and registers it."""
    with target(ctx).client() as client:
        accepted = client.artifacts.import_dir(directory, kind=kind, name=name, version=version, parents=parent)
        result = client.artifacts.wait_registered(accepted.id) if wait else accepted
    if as_json:
        emit_json(result)
    else:
        out.print(f"{accepted.id}: {'registered' if wait else accepted.status}")


@app.command()
def download(ctx: typer.Context, artifact_id: str, directory: Path, as_json: JsonFlag = False) -> None:
    """Download every file of the artifact into DIRECTORY."""
    with target(ctx).client() as client:
        written = client.artifacts.download(artifact_id, directory)
    if as_json:
        emit_json([str(path) for path in written])
    else:
        out.print(f"{len(written)} files in {directory}")


@app.command()
def promote(
    ctx: typer.Context,
    artifact_id: str,
    to_stage: Annotated[str, typer.Argument(help="dev, staging, prod or archived")],
    reason: Annotated[str, typer.Option()],
    as_json: JsonFlag = False,
) -> None:
    """Move the artifact to another stage (approver; the registry's policy decides)."""
    with target(ctx).client() as client:
        promotion = client.artifacts.promote(artifact_id, to_stage, reason)
    if as_json:
        emit_json(promotion)
    else:
        out.print(f"{artifact_id} → {to_stage}")


@app.command()
def verify(
    ctx: typer.Context,
    artifact_id: str,
    directory: Annotated[
        Path | None, typer.Option("--dir", file_okay=False, help="Check files downloaded here before (default: fetch)")
    ] = None,
    trusted_keys: Annotated[
        Path | None,
        typer.Option(
            "--trusted-keys",
            dir_okay=False,
            exists=True,
            help="PEM file of the only keys to trust (default: the registry's)",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the signed bundle against the registry's public keys (or only those of `--trusted-keys`, never asking
    the server being verified) and every file against its signed digest; exit 3 when anything does not verify."""
    with target(ctx).client() as client, tempfile.TemporaryDirectory() as scratch:
        keys = (
            pem_blocks(trusted_keys.read_text()) if trusted_keys else [k.pem for k in client.artifacts.signing_keys()]
        )
        statement = verify_bundle(client.artifacts.bundle(artifact_id), keys)
        files = directory or Path(scratch)
        if directory is None:
            client.artifacts.download(artifact_id, files)
        problems = check_files(statement, files)
    if as_json:
        emit_json({"artifact_id": artifact_id, "verified": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            err.print(f"[red]✗[/red] {problem}")
    else:
        out.print(f"[green]✓[/green] {artifact_id}: signature and {len(statement['predicate']['resources'])} files")
    if problems:
        raise typer.Exit(VERIFY_FAILED)

"""The marketplace's routes, reached through the gateway, which vouches for the acting user in its token: search and
show listings, publish one's own artifact, check a listing against a base model (optionally with a live canary),
rate, download a listing's verified files as one archive, and record an install the gateway deployed.

Produces: marketplace.events.v1 (ListingDownloaded, ListingInstalled), through the outbox."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from modelops_contracts import ArtifactKind
from modelops_contracts.artifacts import REF_PATTERN, TEXT_PATTERN
from modelops_contracts.marketplace import (
    TAG_PATTERN,
    CompatibilityView,
    InstallRecord,
    ListingDownloaded,
    ListingInstalled,
    ListingPage,
    ListingView,
    PublishRequest,
    RatingRequest,
    RatingView,
)
from modelops_shared.bus import enqueue
from modelops_shared.service import ActingUserDep, ActingWriterDep
from starlette.background import BackgroundTask

from . import compatibility, store
from .deps import MarketplaceDep
from .domain import BaseUnusable, CanaryBusy, ListingNotFound, NotListable, NotPublisher, RatingTooOften
from .listing import MODEL_KINDS, listing_fields, verified

router = APIRouter(prefix="/v1", tags=["marketplace"])
ArtifactId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Text = Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)]
PAGE = 20
ARCHIVE_CHUNK = 1024 * 1024


async def _listing(market: MarketplaceDep, artifact_id: str) -> dict[str, Any]:
    found = await store.listing(market.runtime.pool, artifact_id)
    if found is None:
        raise ListingNotFound(artifact_id)
    return found


@router.get("/listings", response_model=ListingPage)
async def search(
    _: ActingUserDep,
    market: MarketplaceDep,
    q: Annotated[str | None, Query(max_length=500, pattern=TEXT_PATTERN, description="Full text")] = None,
    base_model: Text = None,
    task: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
    quantization: Text = None,
    license: Text = None,
    kind: Literal["adapter", "quantized_model"] | None = None,
    rank: Annotated[int | None, Query(ge=1, le=1024)] = None,
    min_rating: Annotated[float | None, Query(ge=1, le=5)] = None,
    sort: Literal["downloads", "rating", "recent", "relevance"] = "downloads",
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE,
) -> ListingPage:
    """Listed artifacts: full text over title, description and card, filtered, sorted, a page at a time."""
    offset = int(cursor or 0)
    filters = {
        "base_model": base_model,
        "task": task,
        "quantization": quantization,
        "license": license,
        "kind": kind,
        "rank": rank,
        "min_rating": min_rating,
    }
    order = sort if sort != "relevance" or q else "recent"
    rows, total = await store.search(market.runtime.pool, q=q, filters=filters, sort=order, offset=offset, limit=limit)
    more = offset + len(rows) < total
    return ListingPage(
        data=[ListingView.model_validate(row) for row in rows],
        total=total,
        next_cursor=str(offset + len(rows)) if more else None,
    )


@router.get("/listings/{artifact_id}", response_model=ListingView)
async def show(_: ActingUserDep, market: MarketplaceDep, artifact_id: ArtifactId) -> Any:
    return await _listing(market, artifact_id)


@router.post("/listings", status_code=201, response_model=ListingView)
async def publish(body: PublishRequest, user: ActingWriterDep, market: MarketplaceDep) -> Any:
    """List one's own adapter or quantized model with a title, description, tasks, licence, languages and example
    prompts, whatever its stage (not revoked): its files are verified first."""
    artifact, fields = await listing_fields(market.artifacts, body.artifact_id)
    if artifact.record["created_by"] != user.name and not user.is_admin:
        raise NotPublisher(body.artifact_id)
    said = body.model_dump(exclude={"artifact_id"})
    async with market.runtime.pool.acquire() as conn, conn.transaction():
        await store.record_registered(
            conn,
            {
                "artifact_id": artifact.id,
                "kind": artifact.kind,
                "name": artifact.name,
                "version": artifact.version,
                **{key: fields[key] for key in ("stage", "key_id", "digest")},
            },
        )
        current = {key: value for key, value in fields.items() if key != "stage"}  # the registry's events say that
        await store.list_artifact(conn, artifact.id, {**current, **said, "publisher": user.name})
    return await _listing(market, artifact.id)


@router.get("/listings/{artifact_id}/compatibility", response_model=CompatibilityView)
async def check(
    _: ActingUserDep,
    market: MarketplaceDep,
    artifact_id: ArtifactId,
    base_model: Annotated[str, Query(pattern=REF_PATTERN, description="An artifact id or name")],
    canary: Annotated[bool, Query(description="Also run the adapter on the base: outputs change, no NaN")] = False,
) -> CompatibilityView:
    """Whether the listing works on that base: modules and shapes, architecture, tokenizer, PEFT, kind; reasons
    for every failed check."""
    await _listing(market, artifact_id)
    listed = await verified(market.artifacts, artifact_id, ArtifactKind.ADAPTER, ArtifactKind.QUANTIZED_MODEL)
    try:
        base = await verified(market.artifacts, base_model, ArtifactKind.BASE_MODEL, *MODEL_KINDS)
    except NotListable as error:
        raise BaseUnusable(str(error), base_model=base_model) from None
    trained_id = (listed.record.get("metadata") or {}).get("base_model")
    trained_on = None
    if listed.kind == "adapter" and trained_id and trained_id != base.id:
        try:
            trained_on = await verified(market.artifacts, trained_id, ArtifactKind.BASE_MODEL, *MODEL_KINDS)
        except NotListable:
            trained_on = None
    elif listed.kind == "adapter":
        trained_on = base
    found = await asyncio.to_thread(compatibility.checks, listed, base, trained_on)
    ran = None
    if canary and listed.kind == "adapter" and all(item.ok for item in found):
        if market.canary_running.locked():
            raise CanaryBusy("a canary is running: try again shortly", retry_after=5)
        async with market.canary_running:
            loop = asyncio.get_running_loop()
            prompt = market.settings.marketplace_canary_prompt
            ran = await loop.run_in_executor(market.canaries, compatibility.canary, listed, base, prompt)
        found.append(compatibility.canary_check(ran))
    return CompatibilityView(
        listing=artifact_id,
        base_model=base.id,
        compatible=all(item.ok for item in found),
        reasons=[f"{item.name}: {item.detail}" for item in found if not item.ok],
        checks=found,
        canary=ran,
    )


@router.post("/listings/{artifact_id}/ratings", status_code=201, response_model=RatingView)
async def rate(body: RatingRequest, user: ActingUserDep, market: MarketplaceDep, artifact_id: ArtifactId) -> Any:
    """One rating per API key and listing: rating again replaces it. At most a few per minute per key (429)."""
    await _listing(market, artifact_id)
    async with market.runtime.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", user.name)
        if await store.ratings_in_last_minute(conn, user.name) >= market.settings.marketplace_ratings_per_minute:
            raise RatingTooOften(f"{user.name} rated too often: wait a minute", retry_after=60)
        given = await store.rate(conn, artifact_id, user.name, body.stars, body.review)
    listing = await _listing(market, artifact_id)
    return {**given, "rating": listing["rating"]}


@router.get(
    "/listings/{artifact_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The listing's verified files"}},
)
async def download(user: ActingUserDep, market: MarketplaceDep, artifact_id: ArtifactId) -> StreamingResponse:
    """The listing's files, verified here against their signature, as one zip; each download is counted once."""
    found = await _listing(market, artifact_id)
    listed = await verified(market.artifacts, artifact_id, ArtifactKind.ADAPTER, ArtifactKind.QUANTIZED_MODEL)
    folder = Path(tempfile.mkdtemp(dir=_scratch(market)))
    try:
        archive = await asyncio.to_thread(_zipped, listed.path, folder / f"{found['name']}-{found['version']}.zip")
        async with market.runtime.pool.acquire() as conn, conn.transaction():
            event = ListingDownloaded(artifact_id=artifact_id, by=user.name)
            await enqueue(conn, market.runtime.bus, event, correlation_id=artifact_id)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    disposition = f'attachment; filename="{archive.name}"'
    return StreamingResponse(
        _streamed(archive),
        media_type="application/zip",
        headers={"Content-Disposition": disposition},
        background=BackgroundTask(shutil.rmtree, folder, True),  # also when the client went away early
    )


@router.post("/listings/{artifact_id}/installs", status_code=202)
async def record_install(
    body: InstallRecord, user: ActingWriterDep, market: MarketplaceDep, artifact_id: ArtifactId
) -> dict[str, str]:
    """Count an install the gateway deployed (the gateway calls this once it staged the deployment)."""
    await _listing(market, artifact_id)
    async with market.runtime.pool.acquire() as conn, conn.transaction():
        event = ListingInstalled(
            artifact_id=artifact_id, by=user.name, deployment=body.deployment, base_model=body.base_model
        )
        await enqueue(conn, market.runtime.bus, event, correlation_id=artifact_id)
    return {"status": "recorded"}


def _scratch(market: MarketplaceDep) -> Path:
    folder = market.settings.work_dir / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _zipped(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(source).as_posix())
    return target


def _streamed(archive: Path) -> Iterator[bytes]:
    with archive.open("rb") as opened:
        while chunk := opened.read(ARCHIVE_CHUNK):
            yield chunk

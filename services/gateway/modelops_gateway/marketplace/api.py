"""Marketplace routes, relayed to the marketplace with the caller as the acting user in the gateway's service token:
search and show listings, publish, check compatibility (against a base model, or the base a deployment serves),
rate, download. Installing is the gateway's: the listing is checked against the base, deployed as any deployment is
(the registry's deploy policy, the name's owner), and the install recorded with the marketplace.

Produces: deployments.commands.v1 (Deploy), through the outbox."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from modelops_contracts import Deploy
from modelops_contracts.artifacts import REF_PATTERN, TEXT_PATTERN
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_contracts.marketplace import (
    TAG_PATTERN,
    CompatibilityView,
    ListingPage,
    ListingView,
    PublishRequest,
    RatingRequest,
    RatingView,
)
from modelops_shared.errors import DomainError
from modelops_shared.problems import Problem
from pydantic import BaseModel, Field

from ..deployments.api import staged
from ..deployments.references import deployable
from ..deployments.schemas import DeploymentAccepted
from ..deps import GatewayDep, InferenceDep
from ..upstream import Upstream
from ..web.auth import Caller, Developer, Role, Viewer
from ..web.idempotency import Idempotent
from ..web.openapi import problems
from ..web.relay import forwarded, streamed

JSON_BODY_LIMIT = 64 * 1024
log = logging.getLogger(__name__)
ListingId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Text = Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)]

router = APIRouter(prefix="/v1/marketplace", tags=["marketplace"], responses=problems(401, 403, 429, 502, 503))


class InstallRequest(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(pattern=DEPLOYMENT_NAME, description="The deployment to create (or replace, if yours)")
    base_model: str | None = Field(None, pattern=REF_PATTERN, description="For an adapter: the base to serve it on")


def _user(caller: Caller) -> tuple[str, str]:
    return caller.name, caller.role.value


def _params(**values: Any) -> dict[str, str]:
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
        if value is not None
    }


@router.get("/listings", response_model=ListingPage, responses=problems(422))
async def search(
    caller: Viewer,
    gateway: GatewayDep,
    q: Annotated[str | None, Query(max_length=500, pattern=TEXT_PATTERN, description="Full text")] = None,
    base_model: Annotated[
        str | None, Query(max_length=200, pattern=TEXT_PATTERN, description="Id, name or digest")
    ] = None,
    task: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
    quantization: Text = None,
    license: Text = None,
    kind: Literal["adapter", "quantized_model"] | None = None,
    rank: Annotated[int | None, Query(ge=1, le=1024)] = None,
    min_rating: Annotated[float | None, Query(ge=1, le=5)] = None,
    sort: Literal["downloads", "rating", "recent", "relevance"] = "downloads",
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Signed, verified adapters and quantized models: full text over title, description and card; filters by base
    model (id, name or digest), task, quantization, licence, kind, rank and minimum rating; sorted by downloads,
    rating, recency or relevance; a page at a time (`next_cursor`)."""
    params = _params(
        q=q,
        base_model=base_model,
        task=task,
        quantization=quantization,
        license=license,
        kind=kind,
        rank=rank,
        min_rating=min_rating,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return await forwarded(gateway.marketplace, "GET", "/v1/listings", params=params, acting_for=_user(caller))


@router.get("/listings/{listing_id}", response_model=ListingView, responses=problems(404, 422))
async def show(caller: Viewer, gateway: GatewayDep, listing_id: ListingId) -> Response:
    """One listing: its card, signing key and verification, base model, downloads, installs and rating."""
    return await forwarded(gateway.marketplace, "GET", f"/v1/listings/{listing_id}", acting_for=_user(caller))


@router.post(
    "/listings",
    status_code=201,
    response_model=ListingView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(403, 413, 422),
)
async def publish(body: PublishRequest, caller: Developer, gateway: GatewayDep) -> Response:
    """List an adapter or quantized model you made (or any, as an admin), with a title, description, tasks, licence,
    languages and example prompts; its signature and files are verified first (422 `not-listable` otherwise)."""
    request = body.model_dump(mode="json")
    return await forwarded(gateway.marketplace, "POST", "/v1/listings", json=request, acting_for=_user(caller))


@router.get("/listings/{listing_id}/compatibility", response_model=CompatibilityView, responses=problems(404, 422))
async def check(
    caller: Viewer,
    gateway: GatewayDep,
    inference: InferenceDep,
    listing_id: ListingId,
    base_model: Annotated[str | None, Query(pattern=REF_PATTERN, description="An artifact id or name")] = None,
    deployment: Annotated[str | None, Query(pattern=DEPLOYMENT_NAME)] = None,
    canary: bool = False,
) -> Response:
    """Whether the listing works on your base model (`base_model`, or the one `deployment` serves): target modules
    and their shapes, architecture, tokenizer digest, PEFT version, kind; `canary=true` also runs it."""
    if canary and not caller.role.includes(Role.DEVELOPER):
        raise Problem(403, "forbidden", "a live canary loads a model: it needs the developer role")
    base = await _base_of(inference, base_model, deployment)
    params = _params(base_model=base, canary=canary)
    path = f"/v1/listings/{listing_id}/compatibility"
    return await forwarded(gateway.marketplace, "GET", path, params=params, acting_for=_user(caller))


@router.post(
    "/listings/{listing_id}/ratings",
    status_code=201,
    response_model=RatingView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 413, 422),
)
async def rate(body: RatingRequest, caller: Viewer, gateway: GatewayDep, listing_id: ListingId) -> Response:
    """Rate a listing 1–5 stars (one rating per API key: rating again replaces it; a few per minute, 429 beyond)."""
    path = f"/v1/listings/{listing_id}/ratings"
    return await forwarded(
        gateway.marketplace,
        "POST",
        path,
        json=body.model_dump(mode="json"),
        relay_problems=True,
        acting_for=_user(caller),
    )


@router.get(
    "/listings/{listing_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "Its verified files"}, **problems(404, 422)},
)
async def download(caller: Viewer, gateway: GatewayDep, listing_id: ListingId) -> Response:
    """The listing's files, verified against their signature, as one zip; every download counts."""
    path = f"/v1/listings/{listing_id}/download"
    return await streamed(gateway.marketplace, "GET", path, only_success=True, acting_for=_user(caller))


@router.post(
    "/listings/{listing_id}/install",
    status_code=202,
    response_model=DeploymentAccepted,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 413, 422),
)
async def install(
    body: InstallRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent, listing_id: ListingId
) -> Response:
    """Deploy the listing as `name`: an adapter on `base_model`, once the compatibility check passes (422
    `incompatible` with the reasons otherwise); a quantized model on its own. Counted as an install. Follow the
    deployment at `GET /v1/deployments/{name}`."""

    async def prepare(_: str) -> Deploy:
        listing = await _json(gateway, f"/v1/listings/{listing_id}", caller)
        if listing["kind"] == "adapter":
            if body.base_model is None:
                raise Problem(422, "base-model-required", "an adapter is installed on a base model: name it")
            path = f"/v1/listings/{listing_id}/compatibility"
            verdict = await _json(gateway, path, caller, params={"base_model": body.base_model})
            if not verdict["compatible"]:
                raise Problem(422, "incompatible", "; ".join(verdict["reasons"]), reasons=verdict["reasons"])
            serves = await deployable(gateway.lookups, verdict["base_model"], [listing_id])
        else:
            serves = await deployable(gateway.lookups, listing_id, [])
        return Deploy(
            name=body.name,
            base_model=serves.base_model["id"],
            adapters=[adapter["id"] for adapter in serves.adapters],
            requested_by=caller.name,
        )

    async def stage(conn: asyncpg.Connection, command: Deploy) -> Response:
        return await staged(conn, gateway, caller, command)

    outcome = await idempotency.run_prepared(body.model_dump(mode="json"), prepare, stage)
    if not outcome.replayed and outcome.response.status_code == 202:
        await _record_install(gateway, listing_id, body, caller)
    return outcome.response


async def _record_install(gateway: GatewayDep, listing_id: str, body: InstallRequest, caller: Caller) -> None:
    """Count the install (the deployment is queued already: a marketplace that cannot count it costs the count,
    which is logged, not the install)."""
    record = {"deployment": body.name, "base_model": body.base_model or listing_id}
    path = f"/v1/listings/{listing_id}/installs"
    try:
        answer = await gateway.marketplace.send("POST", path, json=record, stream=False, acting_for=_user(caller))
    except DomainError as error:
        log.error("install of %s as %s not counted: %s", listing_id, body.name, error)
        return
    if answer.status_code != 202:
        log.error(
            "install of %s as %s not counted: the marketplace answered %s", listing_id, body.name, answer.status_code
        )


async def _base_of(inference: Upstream, base_model: str | None, deployment: str | None) -> str:
    """The base model to check against: named, or the one the deployment serves."""
    if (base_model is None) == (deployment is None):
        raise Problem(422, "one-base", "name either base_model or deployment")
    if base_model is not None:
        return base_model
    answer = await inference.request("GET", f"/v1/deployments/{deployment}")
    if answer.status_code == 404:
        raise Problem(404, "deployment-not-found", f"no deployment {deployment!r}")
    if answer.status_code != 200:
        raise inference.failure(answer.status_code)
    return str(answer.json()["base_model"])


async def _json(gateway: GatewayDep, path: str, caller: Caller, params: dict[str, str] | None = None) -> dict[str, Any]:
    """The marketplace's answer; its problems (a listing not found, an unusable base) are the client's to see."""
    answer = await gateway.marketplace.send("GET", path, params=params, stream=False, acting_for=_user(caller))
    if answer.status_code != 200:
        problem = answer.json()
        slug = problem.get("type", "").rsplit("/", 1)[-1] or "marketplace-error"
        raise Problem(answer.status_code, slug, problem.get("detail"))
    found: dict[str, Any] = json.loads(answer.content)
    return found

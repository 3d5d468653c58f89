"""The bodies of the deployment routes: what a client asks to serve, and a deployment as it reads back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import asyncpg
from modelops_contracts.artifacts import TEXT_PATTERN
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_contracts.routing import Label, RouteTarget
from pydantic import BaseModel, Field


class DeploymentStatus(StrEnum):
    QUEUED = "queued"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class DeployRequest(BaseModel):
    name: str = Field(pattern=DEPLOYMENT_NAME, description="The deployment's name: the model name clients send")
    base_model: str = Field(
        min_length=1,
        max_length=200,
        pattern=TEXT_PATTERN,
        description="The base model: an artifact id, or a name (its latest registered base model)",
    )
    adapters: list[Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]] = Field(
        default_factory=list,
        max_length=64,
        description="Adapters (ids, or names: the latest of each); none serves the base model alone",
    )
    routes: dict[Label, RouteTarget] = Field(
        default_factory=dict,
        max_length=64,
        description="When `base_model` is a router: who answers each of its targets (every one of them)",
        # Keys that are not labels are refused: the document says so (pydantic writes only patternProperties).
        json_schema_extra={"additionalProperties": False},
    )


class DeploymentAccepted(BaseModel):
    name: str
    status: Literal["queued"]


class DeploymentRemoval(BaseModel):
    name: str
    status: Literal["removing"]


class DeploymentView(BaseModel):
    """A deployment as the inference service serves it, or `queued` while it has not picked the Deploy up."""

    name: str
    status: DeploymentStatus
    reason: str | None = Field(None, description="Why it failed")
    base_model: str
    base_model_id: str | None = None
    adapters: list[str]
    adapter_ids: list[str] = []
    models: list[str] = Field(default_factory=list, description="The model names it answers to")
    routes: dict[str, RouteTarget] | None = Field(None, description="A router's targets")
    requested_by: str | None = Field(None, description="Who deployed it through this gateway")
    requested_at: datetime | None = None

    @classmethod
    def queued(cls, row: asyncpg.Record) -> DeploymentView:
        """A deployment accepted here that the inference service has not picked up yet."""
        return cls(
            name=row["name"],
            status=DeploymentStatus.QUEUED,
            base_model=row["base_model"],
            adapters=list(row["adapters"]),
            requested_by=row["requested_by"],
            requested_at=row["requested_at"],
            routes=row["routes"],
        )

    @classmethod
    def served(cls, view: dict[str, Any], row: asyncpg.Record | None) -> DeploymentView:
        """What the inference service reports, with who deployed it through this gateway."""
        extra = (
            {"requested_by": row["requested_by"], "requested_at": row["requested_at"], "routes": row["routes"]}
            if row
            else {}
        )
        return cls.model_validate({**view, **extra})

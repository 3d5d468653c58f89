"""What a route reaches: the marketplace's runtime and artifact client, held in app state once the lifespan started
them (`MarketplaceDep`), or a 503 problem before that. Who acts is the gateway's to say (`ActingUserDep`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.service import Runtime, state_dependency

from .settings import MarketplaceSettings


@dataclass
class Marketplace:
    settings: MarketplaceSettings
    runtime: Runtime
    artifacts: ArtifactClient
    canaries: Executor  # one model loaded at a time for live checks
    canary_running: asyncio.Lock = field(default_factory=asyncio.Lock)


get_marketplace = state_dependency("marketplace", Marketplace, detail="the marketplace is starting")
MarketplaceDep = Annotated[Marketplace, Depends(get_marketplace)]

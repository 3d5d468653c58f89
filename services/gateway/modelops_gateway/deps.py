"""What a request (or WebSocket) handler reaches: the gateway's connections, held in app state once the lifespan
started them (`GatewayDep`), and the inference service the relaying routes talk to (`InferenceDep`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.service import Runtime, state_dependency

from .access.store import KeyStore
from .jobs.feed import JobFeed
from .registry_lookups import RegistryLookups
from .settings import GatewaySettings
from .upstream import Upstream
from .usage.store import TrainingTokenCost
from .web.ratelimit import RateLimiter


@dataclass
class Gateway:
    settings: GatewaySettings
    runtime: Runtime
    keys: KeyStore
    limiter: RateLimiter
    registry: Upstream
    inference: Upstream
    rag: Upstream
    marketplace: Upstream
    feed: JobFeed
    lookups: RegistryLookups
    token_cost: TrainingTokenCost
    query_slots: asyncio.Semaphore  # dataset queries running at once; the others wait their turn


get_gateway = state_dependency("gateway", Gateway, detail="the gateway is starting", retry_after=1)
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def get_inference(gateway: GatewayDep) -> Upstream:
    """The inference service, as the routes that relay to it reach it (a test overrides this with a stand-in)."""
    return gateway.inference


InferenceDep = Annotated[Upstream, Depends(get_inference)]

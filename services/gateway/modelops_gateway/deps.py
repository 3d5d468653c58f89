"""What a request (or WebSocket) handler reaches: the gateway's connections, held in app state once the lifespan
started them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.problems import Problem
from modelops_shared.service import Runtime
from starlette.requests import HTTPConnection

from .access.store import KeyStore
from .jobs.feed import JobFeed
from .jobs.references import RegistryLookups
from .settings import GatewaySettings
from .upstream import Upstream
from .web.ratelimit import RateLimiter


@dataclass
class Gateway:
    settings: GatewaySettings
    runtime: Runtime
    keys: KeyStore
    limiter: RateLimiter
    registry: Upstream
    inference: Upstream
    feed: JobFeed
    lookups: RegistryLookups


def _gateway(connection: HTTPConnection) -> Gateway:
    gateway: Gateway | None = getattr(connection.app.state, "gateway", None)
    if gateway is None:
        raise Problem(503, "not-ready", "the gateway is starting", retry_after=1)
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]

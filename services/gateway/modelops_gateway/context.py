"""What a request (or WebSocket) handler reaches: the gateway's connections, held in app state once the lifespan
started them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.problems import Problem
from modelops_shared.service import Runtime
from starlette.requests import HTTPConnection

from .jobs import JobFeed, RegistryLookups
from .keys import KeyStore
from .ratelimit import RateLimiter
from .settings import GatewaySettings
from .upstream import RegistryClient


@dataclass
class Gateway:
    settings: GatewaySettings
    runtime: Runtime
    keys: KeyStore
    limiter: RateLimiter
    registry: RegistryClient
    feed: JobFeed
    lookups: RegistryLookups


def _gateway(connection: HTTPConnection) -> Gateway:
    gateway: Gateway | None = getattr(connection.app.state, "gateway", None)
    if gateway is None:
        raise Problem(503, "not-ready", "the gateway is starting")
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]

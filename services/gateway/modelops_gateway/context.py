"""What a request handler reaches: the gateway's connections, held in app state once the lifespan started them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from modelops_shared.problems import Problem
from modelops_shared.service import Runtime

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


def _gateway(request: Request) -> Gateway:
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise Problem(503, "not-ready", "the gateway is starting")
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]

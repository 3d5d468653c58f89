"""`python -m modelops_gateway`: the gateway's HTTP API on MODELOPS_GATEWAY_PORT (8000), every route under /v1.

Consumes nothing yet. Produces: artifacts.submissions.v1 (through the outbox)."""

from __future__ import annotations

from modelops_shared.service import serve

from .app import create_app
from .settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

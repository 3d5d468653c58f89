"""`python -m modelops_gateway`: the gateway's HTTP API on MODELOPS_GATEWAY_PORT (8000), every route under /v1.

Consumes: training.events.v1 (into its own jobs tables). Produces, through the outbox: artifacts.submissions.v1,
datasets.events.v1, training.commands.v1, deployments.commands.v1."""

from __future__ import annotations

from modelops_shared.service import serve

from .app import create_app
from .settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

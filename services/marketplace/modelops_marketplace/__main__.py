"""`python -m modelops_marketplace`: HTTP (listings, search, compatibility, ratings, downloads, /healthz, /readyz,
/metrics) and the projections of registry and usage events in one process."""

from __future__ import annotations

from modelops_shared.service import serve

from .app import create_app
from .settings import MarketplaceSettings


def main() -> int:
    settings = MarketplaceSettings()
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

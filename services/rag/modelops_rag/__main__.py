"""`python -m modelops_rag`: HTTP (collections, search, answers, /healthz, /readyz, /metrics) and the index job
consumer in one process."""

from __future__ import annotations

from modelops_shared.service import serve

from .app import create_app
from .settings import RagSettings


def main() -> int:
    settings = RagSettings()
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m modelops_evaluator`: HTTP (/healthz, /readyz, /metrics, /v1/worker) and the job consumer in one
process."""

from __future__ import annotations

from modelops_shared.service import serve

from .app import create_app
from .settings import EvaluatorSettings


def main() -> int:
    settings = EvaluatorSettings()
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m modelops_inference`: HTTP (OpenAI API, deployments, /healthz, /readyz, /metrics) and the deployment
and artifact consumers in one process."""

from __future__ import annotations

from modelops_shared.service import serve

from .app import create_app
from .settings import InferenceSettings


def main() -> None:
    settings = InferenceSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

"""`python -m modelops_trainer [serve | bootstrap-base]`.

serve           HTTP (/healthz, /readyz, /metrics, /v1/worker) and the job consumer in one process (the default)
bootstrap-base  build the tiny Llama base model and tokenizer from a seed, store it and submit it to the registry
"""

from __future__ import annotations

import argparse
import asyncio

from modelops_shared.service import serve

from .app import bootstrap_base, create_app
from .base_model import BASE_NAME
from .settings import TrainerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelops_trainer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve")
    base = commands.add_parser("bootstrap-base")
    base.add_argument("--seed", type=int, default=0)
    base.add_argument("--name", default=BASE_NAME)
    base.add_argument("--wait", action="store_true", help="wait until the registry has registered it")
    args = parser.parse_args(argv)
    settings = TrainerSettings()
    if args.command == "bootstrap-base":
        return asyncio.run(bootstrap_base(settings, seed=args.seed, name=args.name, wait=args.wait))
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

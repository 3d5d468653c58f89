"""`python -m modelops_trainer [serve | bootstrap-base]`.

serve           HTTP (/healthz, /readyz, /metrics, /v1/worker) and the job consumer in one process (the default)
bootstrap-base  build the tiny Llama base model and tokenizer from a seed, store it and submit it to the registry
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from modelops_contracts import ArtifactKind
from modelops_shared.artifacts import ArtifactClient, ArtifactError
from modelops_shared.bus import Bus
from modelops_shared.service import serve
from modelops_shared.storage import open_store

from .app import create_app
from .bootstrap import BASE_NAME, build_base_model, submit_base_model
from .settings import TrainerSettings

REGISTRY_WAIT_S = 60.0


async def bootstrap_base(settings: TrainerSettings, *, seed: int, name: str, wait: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="modelops-base-") as scratch:
        await asyncio.to_thread(build_base_model, Path(scratch), seed)
        store = open_store(settings.store_url, settings)
        submission = await submit_base_model(store, Path(scratch), name=name, created_by="bootstrap", seed=seed)
    bus = Bus(settings)
    await bus.start()
    try:
        await bus.publish(submission)
    finally:
        await bus.stop()
    print(f"submitted base_model {submission.artifact_id} ({name}, seed {seed})")
    if not wait:
        return 0
    async with ArtifactClient.from_settings(settings, settings.work_dir / "cache") as client:
        async with asyncio.timeout(REGISTRY_WAIT_S):
            while True:
                try:
                    record = await client.resolve(submission.artifact_id, ArtifactKind.BASE_MODEL)
                except ArtifactError as error:
                    if "rejected" in str(error):
                        print(f"the registry rejected it: {error}", file=sys.stderr)
                        return 1
                    await asyncio.sleep(0.5)
                    continue
                print(f"registered as {record['name']} version {record['version']}")
                return 0


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

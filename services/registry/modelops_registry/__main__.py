"""`python -m modelops_registry [serve | verify-log | replay | rotate-key]`.

serve       HTTP and the tracked consumer in one process (the default)
verify-log  walk the hash chain; exit 1 on any edited, deleted, inserted or reordered row
replay      rebuild every projection from the log into empty tables and print `state digest: <hex>`
rotate-key  make a new active signing key; old public keys stay for verification
"""

from __future__ import annotations

import argparse
import asyncio

from modelops_shared.service import serve

from .app import create_app, rotate_key, verify_log
from .replay import replay
from .settings import RegistrySettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelops_registry", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve")
    commands.add_parser("verify-log")
    commands.add_parser("replay")
    rotate = commands.add_parser("rotate-key")
    rotate.add_argument("--algorithm", choices=["ed25519", "ecdsa-p256"])
    args = parser.parse_args(argv)
    settings = RegistrySettings()
    if args.command == "verify-log":
        return asyncio.run(verify_log(settings))
    if args.command == "replay":
        return asyncio.run(replay(settings))
    if args.command == "rotate-key":
        return rotate_key(settings, args.algorithm)
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

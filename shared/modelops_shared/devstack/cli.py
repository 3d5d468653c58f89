"""`modelops-stack up|down|status`: the embedded stack behind `make up`, `make down` and `make status`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..settings import Settings
from .admin import ADMIN_KEY_FILE, take_unshown_admin_key
from .components import StackPaths
from .drain import DRAIN_TIMEOUT_S
from .processes import StackError
from .stack import SERVICE_TIMEOUT_S, Row, quiesce, start_infrastructure, start_services, status, stop_all


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelops-stack",
        description="Run the embedded ModelOps stack: tansu, PostgreSQL, Redis, the object store and the services. "
        "Addresses, ports and the state directory come from MODELOPS_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start what is not running and wait until everything is ready")
    down = commands.add_parser(
        "down", help="wait until what is in flight has been consumed (the broker keeps it in memory), then stop all"
    )
    down.add_argument(
        "--drain-timeout",
        type=float,
        default=DRAIN_TIMEOUT_S,
        help="seconds to wait for in-flight messages before stopping anyway (and saying what is lost)",
    )
    show = commands.add_parser("status", help="show each component: state, pid, address")
    for command in (up, show):
        command.add_argument(
            "--services-root", type=Path, default=Path("services"), help="where service packages live (./services)"
        )
    up.add_argument(
        "--service-timeout", type=float, default=SERVICE_TIMEOUT_S, help="seconds each service gets to be ready"
    )
    return parser


async def _up(settings: Settings, services_root: Path, service_timeout: float) -> None:
    print(f"starting the embedded stack; state in {StackPaths.of(settings).root}", flush=True)
    await start_infrastructure(settings)
    await start_services(settings, services_root, service_timeout)


def _print_table(rows: list[Row]) -> None:
    table = [("COMPONENT", "STATE", "PID", "ADDRESS")]
    table += [(row.name, row.state, str(row.pid or "-"), row.address) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)), line[3], sep="  ")


def _show_admin_key(settings: Settings) -> None:
    secret = take_unshown_admin_key(settings)
    if secret is not None:
        key_file = StackPaths.of(settings).root / ADMIN_KEY_FILE
        print(f"\ngateway admin API key (shown once; also in {key_file}, readable by you only):\n  {secret}")


def _drain(settings: Settings, timeout_s: float) -> None:
    started = time.monotonic()
    try:
        left = asyncio.run(quiesce(settings, timeout_s))
    except Exception as error:  # whatever stops the look (a broker already gone) must not stop the stop
        print(f"could not check for in-flight messages ({type(error).__name__}: {error}); stopping anyway")
        return
    if left is None:
        return
    if left:
        print(f"still in flight after {timeout_s:.0f} s; the broker keeps it in memory, so stopping loses it:")
        for line in left.lines():
            print(f"  {line}")
        print("  (a training job still running keeps its command unconsumed; wait for it, or cancel it, first)")
    else:
        print(f"drained: nothing in flight ({time.monotonic() - started:.1f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    try:
        if args.command == "up":
            asyncio.run(_up(settings, args.services_root, args.service_timeout))
            _print_table(status(settings, args.services_root))
            print(f"logs in {StackPaths.of(settings).root / 'logs'}")
            _show_admin_key(settings)
        elif args.command == "down":
            _drain(settings, args.drain_timeout)
            stopped = stop_all(settings)
            print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
        else:
            _print_table(status(settings, args.services_root))
    except StackError as error:
        print(f"modelops-stack {args.command}: {error}", file=sys.stderr)
        return 1
    return 0

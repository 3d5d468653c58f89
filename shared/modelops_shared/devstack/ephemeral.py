"""Settings for a throwaway stack on free loopback ports: test sessions and benchmarks that run side by side
(or beside `make up`) never meet each other's broker, database or Redis."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from ..settings import Settings

_LOWEST_PORT = 20000  # below the ephemeral range; above the well-known and most registered services' ports


def free_port() -> int:
    """A port nothing listens on now, below the kernel's ephemeral range.

    The kernel's own pick (bind to port 0) comes from the ephemeral range, which is where every outgoing connection
    takes its local port too: between this call and the server's bind, a client socket can take it (seen in CI as
    PostgreSQL's "Address already in use"). Ports below that range are only ever taken by an explicit bind.
    """
    low = max(_ephemeral_range_start(), _LOWEST_PORT + 1024)  # a machine whose ephemeral range starts lower
    for _ in range(200):
        port = random.randrange(_LOWEST_PORT, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port between {_LOWEST_PORT} and {low}")


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere the range is above it too (49152 on macOS)


def ephemeral_settings(state_dir: Path) -> Settings:
    return Settings(
        state_dir=state_dir,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        object_store_url=(state_dir / "objects").as_uri(),
        service_keys_dir=state_dir / "service-keys",
    )

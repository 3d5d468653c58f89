"""Settings for a throwaway stack on free loopback ports: test sessions and benchmarks that run side by side
(or beside `make up`) never meet each other's broker, database or Redis."""

from __future__ import annotations

import socket
from pathlib import Path

from ..settings import Settings


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick); a race with another process is possible but rare."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ephemeral_settings(state_dir: Path) -> Settings:
    return Settings(
        state_dir=state_dir,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        object_store_url=(state_dir / "objects").as_uri(),
        service_keys_dir=state_dir / "service-keys",
    )

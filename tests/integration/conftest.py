"""Integration fixtures: real infrastructure, each started once per test session."""

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from modelops_shared.devstack import ephemeral_settings, free_port, stack_env, start_infrastructure, stop_all
from modelops_shared.settings import Settings, get_settings
from moto.server import ThreadedMotoServer

# Tests look at spans, and a service samples none unless an exporter is configured: record them all here,
# for this process and the services it starts.
os.environ.setdefault("MODELOPS_TRACE_SAMPLE_RATIO", "1.0")


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


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """A moto S3 server in this process (state in memory); tests isolate themselves by bucket name."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(endpoint=f"127.0.0.1:{port}")
    finally:
        server.stop()


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
    settings = ephemeral_settings(state_dir)  # free ports: sessions side by side, or beside `make up`
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

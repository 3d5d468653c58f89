"""The gateway the gateway tests run (uvicorn in this process, on the embedded stack, in front of the session's
registry), reused here: the SDK and the CLI are driven against it over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from gateway.conftest import gateway
from gateway.jobs_support import JobWorld, job_world
from modelops_sdk.cli import run

__all__ = ["gateway"]  # a fixture, re-exported so pytest finds it for this package


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(gateway, capsys):
    """Run one `modelops` command line as `key` against the test gateway, in a thread: the gateway serves from this
    test's event loop, which a blocking CLI call must not hold."""

    async def invoke(key: str, *args: str) -> Outcome:
        capsys.readouterr()
        code = await asyncio.to_thread(run, ["--url", gateway.url, "--api-key", key, *args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="package")
async def world(gateway, bus) -> AsyncIterator[JobWorld]:
    async with job_world(gateway, bus) as world:
        yield world

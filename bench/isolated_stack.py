"""A fresh embedded stack for one benchmark run: empty topics and database, so no earlier run's history is
measured too; on free ports, clear of `make up` and of any test session. And the services a benchmark starts on it,
as processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from modelops_shared.devstack import ephemeral_settings, stack_env, start_infrastructure, stop_all
from modelops_shared.settings import Settings

START_TIMEOUT_S = 90


@asynccontextmanager
async def isolated_stack() -> AsyncIterator[Settings]:
    state_dir = Path(tempfile.mkdtemp(prefix="modelops-bench-"))
    settings = ephemeral_settings(state_dir)
    saved = dict(os.environ)
    try:
        await start_infrastructure(settings)
        os.environ.update(stack_env(settings))  # processes the benchmark starts use this stack too
        yield settings
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stop_all(settings)
        shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def process(args: list[str], env: dict[str, str], url: str, ready: str = "/readyz") -> AsyncIterator[None]:
    """A server process, once its `ready` path answers 200."""
    proc = subprocess.Popen([sys.executable, *args], env={**os.environ, "MODELOPS_LOG_LEVEL": "WARNING", **env})
    try:
        async with httpx.AsyncClient(base_url=url) as client, asyncio.timeout(START_TIMEOUT_S):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{args} exited with {proc.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(ready)).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait()

"""Serve an ASGI app for a test: uvicorn on a loopback port of the test's event loop; and a registry of its own."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from modelops_registry.app import create_app as create_registry
from modelops_registry.settings import RegistrySettings
from modelops_shared.devstack import free_port
from modelops_shared.settings import Settings

START_TIMEOUT_S = 60


@asynccontextmanager
async def serving(app: FastAPI, port: int | None = None, *, grace_s: float | None = None) -> AsyncIterator[str]:
    """`app` (its lifespan entered first) behind uvicorn on `port` (a free one by default) of this event loop; yields
    its URL. Leaving stops it, cutting connections still open after `grace_s` (None: waits for them)."""
    port = port or free_port()
    async with app.router.lifespan_context(app):
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=grace_s,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()  # raises why it could not serve
                await asyncio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


@asynccontextmanager
async def registry_serving(stack: Settings, keys_dir: Path) -> AsyncIterator[str]:
    """A registry of its own on the session's stack (a fresh schema, its keys in `keys_dir`), served; yields its URL."""
    settings = RegistrySettings(
        **stack.model_dump(exclude={"service_name"}),
        registry_schema=f"reg_{uuid.uuid4().hex[:8]}",
        registry_keys_dir=keys_dir,
    )
    async with serving(create_registry(settings)) as url:
        yield url

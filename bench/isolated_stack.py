"""A fresh embedded stack for one benchmark run: empty topics and database, so no earlier run's history is
measured too; on free ports, clear of `make up` and of any test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from modelops_shared.devstack import ephemeral_settings, stack_env, start_infrastructure, stop_all
from modelops_shared.settings import Settings


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

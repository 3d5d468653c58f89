"""The whole stack as processes (`modelops-stack up` on free ports, in a temporary state dir), one per test module."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelops_shared.devstack import free_port
from otlp import SpanSink, otlp_receiver
from platforms import CLI, ROOT, SERVICES, Platform


@pytest.fixture(scope="module")
def spans() -> Iterator[SpanSink]:
    """What the platform's services traced: they export every span over OTLP to this receiver."""
    with otlp_receiver() as sink:
        yield sink


@pytest.fixture(scope="module")
def platform(spans: SpanSink) -> Iterator[Platform]:
    # Not under pytest's basetemp: each pytest session resets that tree to mode 0700, which would lock the embedded
    # PostgreSQL (running as its own user) out of its data directory should another session start meanwhile.
    state = Path(tempfile.mkdtemp(prefix="modelops-e2e-"))
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("MODELOPS_")},
        "MODELOPS_STATE_DIR": str(state),
        "MODELOPS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "MODELOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "MODELOPS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        **{f"MODELOPS_{name.upper()}_PORT": str(free_port()) for name in SERVICES},
        "MODELOPS_OTLP_ENDPOINT": spans.endpoint,
    }
    # For the processes the tests run beside the stack (bootstrap-base): the stack's services are told it by `up`.
    env["MODELOPS_REGISTRY_URL"] = f"http://127.0.0.1:{env['MODELOPS_REGISTRY_PORT']}"
    platform = Platform(env, f"http://127.0.0.1:{env['MODELOPS_GATEWAY_PORT']}", state / "admin.key")
    try:
        platform.stack("up")
        yield platform
    finally:
        subprocess.run([str(CLI), "down"], env=env, cwd=ROOT, capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)

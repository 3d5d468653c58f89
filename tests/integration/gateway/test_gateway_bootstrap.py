"""The gateway as the dev stack runs it (`python -m modelops_gateway`, output to a log file): on first start it
creates an admin key, writes it 0600 to the state dir and never logs it; `modelops-stack up` shows it once."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from modelops_shared.devstack import free_port
from modelops_shared.devstack.admin import take_unshown_admin_key
from modelops_shared.settings import Settings
from servers import START_TIMEOUT_S


async def _ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(START_TIMEOUT_S), httpx.AsyncClient() as client:
        while True:
            assert process.poll() is None, "the gateway exited while starting"
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def _run_once(env: dict[str, str], log_path: Path) -> None:
    """Start the gateway, wait until it is ready, check its admin key works, stop it."""
    url = f"http://127.0.0.1:{env['MODELOPS_GATEWAY_PORT']}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelops_gateway"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await _ready(url, process)
        async with httpx.AsyncClient(base_url=url) as client:
            secret = (Path(env["MODELOPS_STATE_DIR"]) / "admin.key").read_text().strip()
            response = await client.get("/v1/api-keys", headers={"Authorization": f"Bearer {secret}"})
            assert response.status_code == 200
            assert [k["role"] for k in response.json()] == ["admin"]
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)


async def test_first_start_writes_an_admin_key_0600_that_no_log_holds_and_up_shows_once(embedded_stack, tmp_path):
    state_dir = tmp_path / "state"
    env = {
        **os.environ,
        "MODELOPS_STATE_DIR": str(state_dir),
        "MODELOPS_SERVICE_NAME": "gateway",
        "MODELOPS_GATEWAY_SCHEMA": f"gw_{uuid.uuid4().hex[:8]}",
        "MODELOPS_GATEWAY_PORT": str(free_port()),
        "MODELOPS_LOG_LEVEL": "DEBUG",
    }
    log_path = tmp_path / "gateway.log"

    await _run_once(env, log_path)
    key_file = state_dir / "admin.key"
    secret = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    await _run_once(env, log_path)  # a restart keeps the key it made
    assert key_file.read_text().strip() == secret

    log = log_path.read_text()
    assert str(key_file) in log
    assert log.count("created the first admin key") == 1
    assert secret not in log

    settings = Settings(state_dir=state_dir)
    assert take_unshown_admin_key(settings) == secret
    assert take_unshown_admin_key(settings) is None  # shown once
    assert secret not in (state_dir / "admin.key.shown").read_text()

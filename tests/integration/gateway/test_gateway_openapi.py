"""Schemathesis against the gateway's own OpenAPI document, served on a real port with the real registry behind it
and a stand-in inference service: every check, in the examples, coverage and fuzzing phases (schemathesis.toml says
which refusals rest on what a schema cannot state). Run as the `st` command, as a user would run it; bounded by a
few examples per operation."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from .inference_support import fake_inference

HERE = Path(__file__).parent
EXAMPLES_PER_OPERATION = 10
TIMEOUT_S = 600


async def test_every_schemathesis_check_passes_on_every_operation(gateway):
    # An admin key reaches every route; its own generous limit keeps 429s from hiding the rest.
    admin = await gateway.keys.make("admin", rate_limit="100000/minute")
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{gateway.url}/openapi.json",
        "--phases=examples,coverage,fuzzing",
        "--checks=all",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        "--continue-on-failure",
        "--seed=13",
        "--no-color",
    ]
    # The stand-in answers the inference routes: this fuzzes the gateway, not a model.
    async with fake_inference(gateway.inference):
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=HERE,  # where schemathesis finds the hooks module the config names
            env={**os.environ, "MODELOPS_FUZZ_KEY": admin.secret},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-20_000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected, report[-5_000:]
    assert tested, report[-5_000:]
    assert int(tested.group(1)) == int(selected.group(2)) >= 40, report[-5_000:]

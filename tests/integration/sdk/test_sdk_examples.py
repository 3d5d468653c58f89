"""The examples in sdk/examples run as their users run them — a separate process given MODELOPS_URL and
MODELOPS_API_KEY — against the test gateway, with a real trainer training the tiny model and a real inference
service answering: each must end with its real outcome (a completed job and a verified adapter, progress streamed
for every job, a fine-tuned model that answers), in a few steps each."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from consumer_groups import skip_history
from modelops_contracts.catalog import TRAINING_COMMANDS
from modelops_inference.app import create_app as create_inference
from modelops_inference.settings import InferenceSettings
from modelops_sdk import AsyncClient
from modelops_shared.settings import Settings
from modelops_trainer.app import create_app as create_trainer
from modelops_trainer.base_model import build_base_model
from modelops_trainer.settings import TrainerSettings
from servers import serving

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[3] / "sdk" / "examples"
RUN_TIMEOUT_S = 240
LETTERS = "abcdefghijklmnopqrstuvwxy"


@pytest.fixture(scope="module")
async def trainer(embedded_stack: Settings, registry_url: str) -> AsyncIterator[None]:
    """A real trainer worker in this process, working for the test gateway's registry."""
    suffix = uuid.uuid4().hex[:8]
    settings = TrainerSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        trainer_schema=f"trainer_{suffix}",
        trainer_group=f"trainer-{suffix}",
        trainer_work_dir=Path(tempfile.mkdtemp(prefix="modelops-sdk-trainer-")),
        trainer_progress_every_steps=1,
        trainer_checkpoint_every_steps=1000,
    )
    await skip_history(embedded_stack, settings.trainer_group, TRAINING_COMMANDS)
    app = create_trainer(settings)
    try:
        async with app.router.lifespan_context(app):
            yield
    finally:
        shutil.rmtree(settings.work_dir, ignore_errors=True)


@pytest.fixture(scope="module")
async def inference(embedded_stack: Settings, registry_url: str, gateway) -> AsyncIterator[None]:
    """A real inference service on a real port, answering the test gateway's completions for this module."""
    suffix = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix="modelops-sdk-inference-"))
    settings = InferenceSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        inference_schema=f"inference_{suffix}",
        inference_group=f"inference-{suffix}",
        inference_work_dir=work_dir,
        inference_max_tokens=16,
    )
    try:
        async with (
            serving(create_inference(settings)) as url,
            gateway.inference.served_at(url),
        ):
            yield
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


@dataclass(frozen=True)
class Base:
    directory: Path
    id: str
    name: str


@pytest.fixture(scope="module")
async def developer(gateway) -> str:
    return (await gateway.keys.make("developer", rate_limit="100000/minute")).secret


@pytest.fixture(scope="module")
async def base(gateway, developer: str, tmp_path_factory: pytest.TempPathFactory) -> Base:
    """The bootstrap tiny Llama (seed 1), imported through the SDK and registered."""
    directory = tmp_path_factory.mktemp("models") / f"tiny-llama-ex-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(build_base_model, directory, 1)
    async with AsyncClient(gateway.url, developer) as client:
        accepted = await client.artifacts.import_dir(directory, kind="base_model", name=directory.name)
        await client.artifacts.wait_registered(accepted.id)
    return Base(directory, accepted.id, directory.name)


def chat_file(path: Path, rows: int = 24) -> Path:
    """ "What comes after x?" → the next letter, in OpenAI's chat fine-tuning format."""
    with path.open("w") as out:
        for i in range(rows):
            letter = LETTERS[i % len(LETTERS)]
            messages = [
                {"role": "user", "content": f"What comes after {letter}?"},
                {"role": "assistant", "content": chr(ord(letter) + 1)},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path


@dataclass(frozen=True)
class Ran:
    code: int
    out: str


async def run_example(gateway, key: str, script: str, *args: str) -> Ran:
    env = {**os.environ, "MODELOPS_URL": gateway.url, "MODELOPS_API_KEY": key}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        pytest.fail(f"{script} still running after {RUN_TIMEOUT_S} s:\n{out.decode()[-4000:]}")
    return Ran(process.returncode or 0, out.decode())


async def test_fine_tune_trains_follows_and_verifies_the_adapter(gateway, trainer, developer, tmp_path):
    model_dir = tmp_path / f"tiny-llama-ft-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(build_base_model, model_dir, 0)
    dataset = f"example-chat-{uuid.uuid4().hex[:6]}"
    args = [str(model_dir), str(chat_file(tmp_path / "train.jsonl")), "--max-steps", "4", "--dataset-name", dataset]

    ran = await run_example(gateway, developer, "fine_tune.py", *args)

    assert ran.code == 0, ran.out
    assert f"dataset {dataset} v0: 24 rows" in ran.out
    steps = [int(step) for step in re.findall(r"progressed step (\d+) loss", ran.out)]
    assert steps == [1, 2, 3, 4], ran.out  # the progress streamed live, every step once
    finished = re.search(r"job (\S+): completed, adapter (\S+)", ran.out)
    assert finished, ran.out
    assert f"adapter {finished.group(2)} verified" in ran.out
    async with AsyncClient(gateway.url, developer) as client:
        job = await client.jobs.show(finished.group(1))
        adapter = await client.artifacts.show(finished.group(2))
    assert (job.status, job.adapter_artifact_id) == ("completed", finished.group(2))
    assert adapter.kind == "adapter"


async def test_async_stream_follows_several_jobs_to_their_end(gateway, trainer, base, developer, tmp_path):
    async with AsyncClient(gateway.url, developer) as client:
        dataset = await client.datasets.upload(
            f"stream-chat-{uuid.uuid4().hex[:6]}", "chat", chat_file(tmp_path / "t.jsonl")
        )
        jobs = [
            (await client.jobs.train(base_model=base.id, dataset=dataset.name, hyperparameters={"max_steps": 3})).id
            for _ in range(2)
        ]

    ran = await run_example(gateway, developer, "async_stream.py", *jobs)

    assert ran.code == 0, ran.out
    for job_id in jobs:
        lines = [line.split(" ", 1)[1] for line in ran.out.splitlines() if line.startswith(f"{job_id} #")]
        assert lines[0] == "#1 queued", ran.out
        assert [int(s) for s in re.findall(r"progressed step (\d+)", "\n".join(lines))] == [1, 2, 3], ran.out
        assert re.fullmatch(r"#\d+ completed", lines[-1]), ran.out
        ids = [int(line.split(" ")[0][1:]) for line in lines]
        assert ids == sorted(set(ids)), ran.out  # each event once, in order
        assert f"{job_id}: completed" in ran.out


async def test_openai_fine_tune_trains_and_the_fine_tuned_model_answers_without_a_deploy(
    gateway, trainer, inference, base, developer, tmp_path
):
    args = [base.name, str(chat_file(tmp_path / "train.jsonl")), "--epochs", "1", "--poll-s", "0.5"]

    ran = await run_example(gateway, developer, "openai_fine_tune.py", *args)

    assert ran.code == 0, ran.out
    assert re.search(r"metrics Step \d+/\d+: training loss=", ran.out), ran.out  # progress events came through
    finished = re.search(r"(ftjob-\S+): succeeded, model (ft:\S+)", ran.out)
    assert finished, ran.out
    job_id, model = finished.groups()
    assert model == f"ft:{base.name}:example:{job_id}"
    assert f"{model} is served" in ran.out  # the gateway deployed it when the job succeeded
    reply = re.search(r"^(\S+) says: (.+)$", ran.out, re.MULTILINE)
    assert reply, ran.out
    assert reply.group(1) == model
    headers = {"Authorization": f"Bearer {developer}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as client:
        deployment = (await client.get(f"/v1/deployments/ft-{job_id}")).json()
    assert (deployment["status"], deployment["base_model_id"]) == ("ready", base.id), deployment

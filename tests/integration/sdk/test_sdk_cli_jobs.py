"""`modelops jobs …` against the real gateway: submit, list, show, cancel, and `wait` following a job to its end
while a stand-in trainer publishes its events on the bus."""

from __future__ import annotations

import asyncio
import json

from modelops_contracts import TrainingCompleted, TrainingProgressed, TrainingStarted
from modelops_sdk.cli import run


def train_args(world, *extra: str) -> list[str]:
    return [
        "jobs",
        "train",
        "--base-model",
        world.base_model_name,
        "--dataset",
        world.chat_dataset,
        "--max-steps",
        "3",
        *extra,
    ]


async def test_train_list_show_wait_until_completed(cli, world):
    key = world.developer.secret
    submitted = await cli(key, *train_args(world, "--json"))
    assert submitted.code == 0, submitted.err
    job_id = json.loads(submitted.out)["id"]

    listed = await cli(key, "jobs", "list", "--status", "queued", "--json")
    assert job_id in [job["id"] for job in json.loads(listed.out)]
    shown = json.loads((await cli(key, "jobs", "show", job_id, "--json")).out)
    assert (shown["status"], shown["base_model_id"]) == ("queued", world.base_model_id)

    waiting = asyncio.create_task(cli(key, "jobs", "wait", job_id))
    await world.bus.publish(TrainingStarted(job_id=job_id, worker="w", total_steps=3))
    for step in (1, 2, 3):
        await world.bus.publish(
            TrainingProgressed(
                job_id=job_id,
                step=step,
                total_steps=3,
                loss=1.0 / step,
                learning_rate=1e-3,
                tokens_per_second=50,
                eta_seconds=3 - step,
            )
        )
    await world.bus.publish(TrainingCompleted(job_id=job_id, adapter_artifact_id="art-x", steps=3, duration_seconds=1))
    waited = await asyncio.wait_for(waiting, 60)
    assert waited.code == 0, waited.err
    assert "completed" in waited.out
    assert "art-x" in waited.out

    streamed = await cli(key, "jobs", "events", job_id, "--json")
    events = [json.loads(line) for line in streamed.out.splitlines()]
    assert [e["type"] for e in events] == ["queued", "started", "progressed", "progressed", "progressed", "completed"]
    assert [e["id"] for e in events] == list(range(1, 7))


async def test_cancel_and_the_main_error_paths(cli, world):
    key = world.developer.secret
    job_id = json.loads((await cli(key, *train_args(world, "--json"))).out)["id"]
    cancelled = await cli(key, "jobs", "cancel", job_id, "--reason", "changed my mind", "--json")
    assert cancelled.code == 0, cancelled.err
    assert json.loads(cancelled.out)["cancel_requested_by"] == world.developer.name

    unknown_model = await cli(
        key, "jobs", "train", "--base-model", "no-such-model", "--dataset", world.chat_dataset, "--epochs", "1"
    )
    assert unknown_model.code == 1
    assert "404" in unknown_model.err
    viewer = await cli(world.viewer.secret, *train_args(world))
    assert viewer.code == 1
    assert "403" in viewer.err
    missing = await cli(key, "jobs", "show", "job-none")
    assert missing.code == 1
    assert "job-not-found" in missing.err
    no_gateway = ["--url", "http://127.0.0.1:9", "--api-key", key, "jobs", "list"]
    assert await asyncio.to_thread(run, no_gateway) == 2  # nothing listens on port 9: a server-side failure


async def test_workers_budgets_and_usage_from_the_cli(cli, world, gateway):
    key, name = world.developer.secret, world.developer.name
    submitted = await cli(key, *train_args(world, "--workers", "2", "--json"))
    shown = json.loads((await cli(key, "jobs", "show", json.loads(submitted.out)["id"], "--json")).out)
    assert shown["spec"]["resources"] == {"workers": 2, "devices_per_worker": 1, "zero_stage": 0}

    assert (await cli(gateway.admin_key, "usage", "budget", name, "0")).code == 0
    try:
        refused = await cli(key, *train_args(world))
        assert refused.code == 1
        assert "budget-exceeded" in refused.err
        mine = json.loads((await cli(key, "usage", "--json")).out)
        assert mine["by"] == "key"
        assert (await cli(key, "usage", "--by", "job")).code == 0
        assert (await cli(key, "usage", "budget", name, "5")).code == 1  # an admin's to set
    finally:
        assert (await cli(gateway.admin_key, "usage", "budget", name, "--remove")).code == 0


def test_the_cli_prints_the_problem_and_what_to_do_and_exits_non_zero_without_a_traceback(capsys):
    # Nothing listens on port 9 (discard): the CLI must say so in words, not in a traceback.
    code = run(["--url", "http://127.0.0.1:9", "--api-key", "k", "jobs", "list"])
    assert code == 2
    printed = capsys.readouterr()
    assert "what to do: is the gateway running" in " ".join(printed.err.split())
    assert "Traceback" not in printed.err + printed.out

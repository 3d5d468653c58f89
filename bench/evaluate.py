"""Evaluation through a deployment: items/s when the evaluator keeps --concurrency requests in flight, which the
inference service batches, against one request at a time — what a loop over the OpenAI client does. Same run, same
items, same deployment.

Real parts throughout: a fresh embedded stack, a registry and an inference process, SmolLM2-135M-Instruct (the
bundled GGUF, converted) registered and deployed through a Deploy command, and the evaluator's own `Deployment`
subject (service token, busy retries) asking the inference service's `/v1/chat/completions`. The items are the
demo's task: a sentence about a person → the person as one line of JSON, greedy, --max-tokens 48. Each figure is the
median of --repeats runs, sides alternating; a check counts the items whose batched answer differs from the
sequential one (batching changes the float arithmetic, rarely the greedy text).

    python bench/evaluate.py [--items 32] [--concurrency 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from isolated_stack import START_TIMEOUT_S, isolated_stack, process
from modelops_contracts import ArtifactKind, ArtifactSubmitted, Deploy, Message
from modelops_evaluator.subjects import Deployment
from modelops_evaluator.suites import Item
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.devstack import free_port
from modelops_shared.service_tokens import ServiceIdentity
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_trainer.gguf_import import convert, smollm2

NAMES = ["Maria Lopez", "John Smith", "Aiko Tanaka", "Omar Haddad", "Lena Fischer", "Carlos Silva", "Priya Patel"]
CITIES = ["Lisbon", "Berlin", "Tokyo", "Cairo", "Madrid", "Chicago", "Mumbai", "Toronto"]
PHRASINGS = ["{name} is {age} and lives in {city}.", "Meet {name} from {city}, who is {age} years old."]


def items(count: int) -> list[Item]:
    rng = random.Random(0)
    found = []
    for index in range(count):
        sentence = rng.choice(PHRASINGS).format(
            name=rng.choice(NAMES), age=rng.randint(18, 90), city=rng.choice(CITIES)
        )
        messages = ({"role": "system", "content": "Extract the person record."}, {"role": "user", "content": sentence})
        found.append(Item(index, "", messages=messages))
    return found


async def publish(settings: Settings, message: Message) -> None:
    bus = Bus(settings.model_copy(update={"service_name": "bench"}))
    await bus.start()
    try:
        await bus.publish(message)
    finally:
        await bus.stop()


async def register_smollm2(settings: Settings, registry_url: str) -> str:
    """SmolLM2 converted from its GGUF, stored and submitted as a base model; its id once registered."""
    store = open_store(settings.store_url, settings)
    with tempfile.TemporaryDirectory(prefix="bench-smollm2-") as scratch:
        info = convert(smollm2().path, Path(scratch))
        artifact_id = f"smollm2-{info.sha256[:16]}"
        files = await upload_directory(store, Path(scratch), f"artifacts/{artifact_id}")
    submission = ArtifactSubmitted(
        artifact_id=artifact_id,
        kind=ArtifactKind.BASE_MODEL,
        name="smollm2-135m-instruct",
        uri=store.url_of(f"artifacts/{artifact_id}"),
        files=files,
        created_by="bench",
    )
    await publish(settings, submission)
    auth = ServiceIdentity.from_settings(settings.model_copy(update={"service_name": "gateway"})).auth("registry")
    async with httpx.AsyncClient(base_url=registry_url, auth=auth) as registry, asyncio.timeout(START_TIMEOUT_S):
        while (await registry.get(f"/v1/artifacts/{artifact_id}")).status_code != 200:
            await asyncio.sleep(0.2)
    return artifact_id


async def deployed(settings: Settings, inference: httpx.AsyncClient, base_model: str, name: str) -> None:
    await publish(settings, Deploy(name=name, base_model=base_model, adapters=[], requested_by="bench"))
    async with asyncio.timeout(600):
        while True:
            response = await inference.get(f"/v1/deployments/{name}")
            if response.status_code == 200 and response.json()["status"] in ("ready", "failed"):
                if response.json()["status"] == "failed":
                    raise RuntimeError(f"deployment failed: {response.json()['reason']}")
                return
            await asyncio.sleep(0.5)


async def timed(subject: Deployment, questions: list[Item], max_tokens: int) -> tuple[float, list[str]]:
    started = time.perf_counter()
    answers = await subject.answer(questions, max_tokens)
    return len(questions) / (time.perf_counter() - started), answers


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    questions = items(args.items)
    async with isolated_stack() as settings:
        registry_port, inference_port = free_port(), free_port()
        registry_url = f"http://127.0.0.1:{registry_port}"
        inference_url = f"http://127.0.0.1:{inference_port}"
        registry_env = {
            "MODELOPS_SERVICE_NAME": "registry",
            "MODELOPS_REGISTRY_PORT": str(registry_port),
            "MODELOPS_REGISTRY_KEYS_DIR": str(settings.state_dir / "keys"),
        }
        inference_env = {
            "MODELOPS_SERVICE_NAME": "inference",
            "MODELOPS_INFERENCE_PORT": str(inference_port),
            "MODELOPS_REGISTRY_URL": registry_url,
            "MODELOPS_INFERENCE_MAX_BATCH": str(args.concurrency),
        }
        async with (
            process(["-m", "modelops_registry"], registry_env, registry_url),
            process(["-m", "modelops_inference"], inference_env, inference_url),
        ):
            base_model = await register_smollm2(settings, registry_url)
            auth = ServiceIdentity.from_settings(settings.model_copy(update={"service_name": "evaluator"}))
            limits = httpx.Limits(max_connections=args.concurrency)
            async with httpx.AsyncClient(
                base_url=inference_url, auth=auth.auth("inference"), timeout=600, limits=limits
            ) as inference:
                await deployed(settings, inference, base_model, "bench")
                batched = Deployment(inference, "bench", args.concurrency, seed=0)
                sequential = Deployment(inference, "bench", 1, seed=0)
                await batched.answer(questions[: args.concurrency], args.max_tokens)  # warm up
                rates: dict[str, list[float]] = {"batched": [], "sequential": []}
                answers: dict[str, list[str]] = {}
                for index in range(args.repeats):
                    sides = [("batched", batched), ("sequential", sequential)]
                    for name, subject in sides if index % 2 == 0 else sides[::-1]:
                        rate, answers[name] = await timed(subject, questions, args.max_tokens)
                        rates[name].append(rate)
    batched_rate, sequential_rate = (statistics.median(rates[side]) for side in ("batched", "sequential"))
    differ = sum(a != b for a, b in zip(answers["batched"], answers["sequential"], strict=True))
    print(
        f"evaluation benchmark: {args.items} chat items through a SmolLM2-135M-Instruct deployment (transformers, "
        f"fp32, CPU), greedy, up to {args.max_tokens} tokens, median of {args.repeats}"
    )
    print(f"  batched ({args.concurrency} in flight)  {batched_rate:6.2f} items/s")
    print(f"  sequential (1 in flight)  {sequential_rate:6.2f} items/s")
    print(f"  ratio batched/sequential  {batched_rate / sequential_rate:6.2f}×")
    print(f"  answers that differ between the two: {differ} of {args.items}")


if __name__ == "__main__":
    asyncio.run(main())

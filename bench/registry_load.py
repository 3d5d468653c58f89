"""Registry load benchmark: PEFT adapters of 50–200 MB, where hashing matters, submitted at fixed rates and as a
backlog; submit-to-registered latency p50/p99 per rate; then the replayed state digest against the live one.

Each adapter is a real PEFT-style folder (adapter_model.safetensors of random LoRA weights, adapter_config.json),
put into the object store as the trainer does (`upload_directory`). Submissions are published on the bus at a fixed
rate (open loop: the next one goes out on schedule whether or not the last was registered); each counts as done
when its ArtifactRegistered arrives on registry.artifacts.v1, so latency covers the consume, the streamed re-hash,
the signature, the log and projection writes and the outbox relay. The registry runs as its own process on a fresh
embedded stack.

Baseline in the same run: what a skilled user would do for the same work, by hand: hashlib sha256 over the same
files read from the object store's directory, and one ed25519 signature (cryptography) per file, a thread per core. Its
MB/s sets the rates: fractions of the submissions/s it could sustain (`--fractions`), so one is well below capacity
and one at it. The backlog round (everything published at once) gives the registry's own registered MB/s, printed
against the baseline's.

    python bench/registry_load.py [--submissions 12] [--min-mb 50] [--max-mb 200] [--repeats 3]
                                  [--fractions 0.25,0.5,1.0]

Figures are medians over the repeats (min-max); MB = 10^6 bytes. A fixed-rate round's registered MB/s cannot exceed
its offered rate; the backlog's is the registry's capacity. With 12 submissions a round, p99 is close to the round's
slowest. Afterwards the registry's state is rebuilt from its event log (`replay`, into a scratch schema) and its
digest compared with the live one (`GET /v1/state-digest`); a difference exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from figures import spread
from isolated_stack import isolated_stack, process
from modelops_contracts import ArtifactKind, ArtifactRegistered, ArtifactRejected, ArtifactSubmitted, FileDigest, decode
from modelops_contracts.catalog import REGISTRY_ARTIFACTS
from modelops_registry.replay import replay
from modelops_registry.settings import RegistrySettings
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.bus.access import KafkaAccess
from modelops_shared.bus.consumer import headers_of
from modelops_shared.devstack import free_port
from modelops_shared.storage import ObjectStore, open_store
from safetensors.numpy import save_file

MB = 10**6
HIDDEN, RANK = 4096, 64  # a 7B-class model's hidden size, a common LoRA rank: 2 MiB of float32 per A+B pair
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
REGISTERED_TIMEOUT_S = 600


@dataclass(frozen=True)
class Adapter:
    """One stored adapter folder: its URL and the digests the trainer would submit."""

    uri: str
    files: list[FileDigest]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def write_adapter(directory: Path, size: int, rng: np.random.Generator) -> None:
    """A PEFT LoRA adapter of about `size` bytes: random A/B weights for q/k/v/o of as many layers as it takes."""
    pair = 2 * RANK * HIDDEN * 4
    tensors: dict[str, np.ndarray] = {}
    for index in range(max(1, round(size / pair))):
        layer, module = divmod(index, len(MODULES))
        stem = f"base_model.model.model.layers.{layer}.self_attn.{MODULES[module]}"
        tensors[f"{stem}.lora_A.weight"] = rng.standard_normal((RANK, HIDDEN), dtype=np.float32) * np.float32(0.01)
        tensors[f"{stem}.lora_B.weight"] = rng.standard_normal((HIDDEN, RANK), dtype=np.float32) * np.float32(0.001)
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "bench/llama-7b",
        "r": RANK,
        "lora_alpha": 2 * RANK,
        "lora_dropout": 0.05,
        "bias": "none",
        "target_modules": list(MODULES),
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))


async def stage_adapters(store: ObjectStore, sizes: list[int], seed: int, label: str) -> list[Adapter]:
    """Each adapter generated in a temporary folder, uploaded as the trainer uploads, then removed locally: one at
    a time, so neither memory nor local disk ever holds more than one."""
    rng = np.random.default_rng(seed)
    adapters = []
    for index, size in enumerate(sizes):
        with tempfile.TemporaryDirectory(prefix="bench-adapter-") as tmp:
            await asyncio.to_thread(write_adapter, Path(tmp), size, rng)
            prefix = f"bench/registry-load/{label}-{index}"
            files = await upload_directory(store, Path(tmp), prefix)
        adapters.append(Adapter(store.url_of(prefix), files))
    return adapters


def local_path(url: str) -> Path:
    return Path(url2pathname(urlsplit(url).path))


def baseline(adapters: list[Adapter]) -> float:
    """MB/s of sha256 over every file, read from the store's directory, and an ed25519 signature per file, the files
    spread over a thread per core (hashlib releases the GIL), as the registry spreads its checks."""
    key = Ed25519PrivateKey.generate()

    def sign(path: Path) -> None:
        with path.open("rb") as handle:
            key.sign(hashlib.file_digest(handle, "sha256").digest())

    files = [local_path(adapter.uri) / file.path for adapter in adapters for file in adapter.files]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(sign, files))
    return sum(a.size for a in adapters) / MB / (time.perf_counter() - started)


class Watcher:
    """Reads registry.artifacts.v1 from the start of every partition and resolves whoever waits for an id."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.consumer = AIOKafkaConsumer(
            **KafkaAccess.of(settings).aiokafka(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,  # what a consuming service waits
        )
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, artifact_id: str) -> asyncio.Future[float]:
        future = self.waiting[artifact_id] = asyncio.get_running_loop().create_future()
        return future

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watcher]:
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(REGISTRY_ARTIFACTS.name) or range(REGISTRY_ARTIFACTS.partitions)
        # Assigned, not joined as a group: no rebalance to wait for, nothing read late.
        self.consumer.assign([TopicPartition(REGISTRY_ARTIFACTS.name, p) for p in partitions])
        task = asyncio.create_task(self._consume())
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.consumer.stop()

    async def _consume(self) -> None:
        while True:
            polled = await self.consumer.getmany(timeout_ms=500)
            now = time.perf_counter()
            for records in polled.values():
                for record in records:
                    _, event = decode(record.key, record.value, headers_of(record))
                    if not isinstance(event, ArtifactRegistered | ArtifactRejected):
                        continue
                    future = self.waiting.pop(event.artifact_id, None)
                    if future is None or future.done():
                        continue
                    if isinstance(event, ArtifactRejected):
                        future.set_exception(RuntimeError(f"{event.artifact_id} rejected: {event.reason}"))
                    else:
                        future.set_result(now)


def submission(adapter: Adapter, index: int) -> ArtifactSubmitted:
    return ArtifactSubmitted(
        artifact_id=f"load-{uuid.uuid4().hex}",
        kind=ArtifactKind.ADAPTER,
        name=f"bench-load-adapter-{index}",
        uri=adapter.uri,
        files=adapter.files,
        metrics={"eval_loss": 1.0},
        created_by="bench",
    )


async def run_round(bus: Bus, watcher: Watcher, adapters: list[Adapter], rate: float | None) -> dict[str, float]:
    """Every adapter submitted once, one every 1/`rate` s (all at once when None); latency p50/p99 in ms and
    registered MB/s from the first submit to the last registration."""
    submissions = [submission(adapter, index) for index, adapter in enumerate(adapters)]
    arrivals = [watcher.expect(s.artifact_id) for s in submissions]
    sent: list[float] = []
    publishing = []
    started = time.perf_counter()
    for index, message in enumerate(submissions):
        if rate is not None:
            await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
        sent.append(time.perf_counter())
        publishing.append(asyncio.create_task(bus.publish(message)))
    await asyncio.gather(*publishing)
    arrived = await asyncio.wait_for(asyncio.gather(*arrivals), REGISTERED_TIMEOUT_S)
    latencies = [(done - at) * 1000 for at, done in zip(sent, arrived, strict=True)]
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98] if len(latencies) > 1 else latencies[0]
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": p99,
        "mb_per_s": sum(a.size for a in adapters) / MB / (max(arrived) - sent[0]),
    }


async def digests(settings: RegistrySettings, registry_url: str) -> tuple[str, str, bool]:
    """The live registry's state digest, the one replay derives from its log, and whether the log stayed put."""
    async with httpx.AsyncClient(base_url=registry_url, timeout=60) as client:
        before = (await client.get("/v1/state-digest")).json()
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            await replay(settings)
        after = (await client.get("/v1/state-digest")).json()
    replayed = next(line for line in printed.getvalue().splitlines() if line.startswith("state digest: "))
    return before["state_digest"], replayed.removeprefix("state digest: "), before == after


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=12, help="adapters, and submissions per round")
    parser.add_argument("--min-mb", type=float, default=50)
    parser.add_argument("--max-mb", type=float, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fractions", default="0.25,0.5,1.0", help="rates, as fractions of the baseline's capacity")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]
    sizes = [int(random.Random(args.seed + i).uniform(args.min_mb, args.max_mb) * MB) for i in range(args.submissions)]
    schema = "registry"
    async with isolated_stack() as stack:
        settings = RegistrySettings(**stack.model_dump(exclude={"service_name"}), registry_schema=schema)
        store = open_store(settings.store_url, settings)
        adapters = await stage_adapters(store, sizes, args.seed, "adapter")
        warmup = await stage_adapters(store, [MB], args.seed + 1, "warmup")
        total_mb = sum(a.size for a in adapters) / MB
        base = [await asyncio.to_thread(baseline, adapters) for _ in range(args.repeats)]
        capacity = statistics.median(base) / (total_mb / len(adapters))  # submissions/s the baseline sustains
        rates: list[float | None] = [f * capacity for f in fractions]
        rates.append(None)
        port = free_port()
        registry_url = f"http://127.0.0.1:{port}"
        env = {
            "MODELOPS_SERVICE_NAME": "registry",
            "MODELOPS_REGISTRY_SCHEMA": schema,
            "MODELOPS_REGISTRY_PORT": str(port),
            "MODELOPS_REGISTRY_KEYS_DIR": str(stack.state_dir / "keys"),
        }
        results: dict[float | None, list[dict[str, float]]] = {rate: [] for rate in rates}
        bus = Bus(settings.model_copy(update={"service_name": "bench-registry-load"}))
        async with process(["-m", "modelops_registry"], env, registry_url), Watcher(settings).running() as watcher:
            await bus.start()
            try:
                await run_round(bus, watcher, warmup, None)  # connections, the consumer's first poll, caches
                for _ in range(args.repeats):
                    for rate in rates:
                        results[rate].append(await run_round(bus, watcher, adapters, rate))
            finally:
                await bus.stop()
            live, replayed, quiet = await digests(settings, registry_url)

    sizes_mb = [a.size / MB for a in adapters]
    print(
        f"registry load: {len(adapters)} PEFT adapters per round, {min(sizes_mb):.0f}-{max(sizes_mb):.0f} MB"
        f" (mean {statistics.mean(sizes_mb):.0f} MB, {total_mb:.0f} MB in all); latency from publishing a submission"
    )
    print(f"to its ArtifactRegistered event arriving; {args.repeats} repeats, medians (min-max)")
    print(f"  baseline sha256 + ed25519 per file, a thread per core: {spread(base, 0)} MB/s")
    print(f"  → capacity {capacity:.2f} submissions/s at the mean size; rates below are fractions of it")
    print(f"  {'':18} {'p50 ms':>17} {'p99 ms':>17} {'registered MB/s':>19}")
    for fraction, rate in zip([*fractions, None], rates, strict=True):
        name = "backlog" if rate is None else f"{rate:.2f}/s ({fraction:g}×)"
        figures = results[rate]
        p50 = spread([r["p50_ms"] for r in figures], 0)
        p99 = spread([r["p99_ms"] for r in figures], 0)
        print(f"  {name:18} {p50:>17} {p99:>17} {spread([r['mb_per_s'] for r in figures], 0):>19}")
    backlog = statistics.median(r["mb_per_s"] for r in results[None])
    print(f"  ratio registered MB/s (backlog) / baseline MB/s: {backlog / statistics.median(base):.2f}")
    print(f"  state digest live     {live}")
    print(f"  state digest replayed {replayed}")
    verdict = "match" if live == replayed else "DIFFER"
    print(f"  {verdict}{'' if quiet else ' (the log moved while replaying: compare with care)'}")
    if live != replayed:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())

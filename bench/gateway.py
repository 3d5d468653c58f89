"""Gateway benchmark: training-job submissions per second against a bare FastAPI endpoint, same run, same concurrency.

Ours: `POST /v1/jobs/training` on a gateway process — API key lookup, Redis rate limit, body validation, the base
model and dataset looked up in a real registry process over HTTP, the job row, its first event and the StartTraining
command written in one transaction, the command published by the outbox relay; the run counts as done once every
command has left the outbox. Bare: a FastAPI app whose POST parses the same JSON body and answers 202. Both run as
uvicorn processes on free ports of a fresh embedded stack; one client process drives both with the same number of
concurrent connections, in alternating rounds.

    python bench/gateway.py [--concurrency 16] [--requests 400]
    MODELOPS_GATEWAY_REGISTRY_CACHE_S=0 python bench/gateway.py   # ask the registry on every submission

The gateway reuses a registry listing for MODELOPS_GATEWAY_REGISTRY_CACHE_S (2 s), so under this load it asks the
registry about the base model and the dataset about once every two seconds; 0 measures a lookup per submission.

Prints p50/p99 latency and requests/s of each side, and the ratio. Target (issue #4): ours ≥ 0.3 × bare requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from isolated_stack import START_TIMEOUT_S, isolated_stack, process
from modelops_contracts import DatasetSchema, DatasetVersionCreated
from modelops_shared.bus import Bus
from modelops_shared.devstack import free_port
from modelops_shared.settings import Settings

ROUNDS = 4
GATEWAY_SCHEMA = "gateway"
DATASET = "bench-chat"
BODY = {
    "base_model": "bench-llama",
    "dataset": DATASET,
    "method": "sft",
    "adapter": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
    "quantization": "none",
    "hyperparameters": {"max_steps": 100, "learning_rate": 2e-4, "batch_size": 8, "seq_len": 256, "seed": 1},
    "eval_split": 0.1,
}


def bare_app() -> FastAPI:
    """The baseline: FastAPI parsing a JSON body and answering 202, nothing else."""
    app = FastAPI()

    @app.post("/v1/jobs/training", status_code=202)
    async def submit(body: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008  # FastAPI's own idiom
        return JSONResponse({"id": f"job-{uuid.uuid4().hex}", "status": "queued"}, 202)

    return app


async def prepare(settings: Settings, gateway_url: str, state_dir: Path) -> str:
    """A developer key with room for the run, a registered base model and a registered dataset; returns the key."""
    admin_key = (state_dir / "admin.key").read_text().strip()
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as client:
        created = await client.post(
            "/v1/api-keys",
            json={"name": "bench", "role": "developer", "rate_limit": "10000000/minute"},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        key: str = created.json()["key"]
        client.headers["Authorization"] = f"Bearer {key}"
        files = [
            ("files", ("config.json", b'{"architectures": ["LlamaForCausalLM"]}')),
            ("files", ("w.bin", b"0" * 64)),
        ]
        imported = await client.post("/v1/artifacts", data={"kind": "base_model", "name": "bench-llama"}, files=files)
        bus = Bus(settings.model_copy(update={"service_name": "bench"}))
        await bus.start()
        try:
            await bus.publish(
                DatasetVersionCreated(
                    dataset_id=f"dataset-{DATASET}-v0",
                    name=DATASET,
                    version=0,
                    schema_kind=DatasetSchema.CHAT,
                    uri="file:///bench",
                    num_rows=100,
                    size_bytes=10_000,
                    created_by="bench",
                )
            )
        finally:
            await bus.stop()
        async with asyncio.timeout(START_TIMEOUT_S):
            while (await client.get(f"/v1/artifacts/{imported.json()['id']}")).status_code != 200:
                await asyncio.sleep(0.2)
            while not (await client.get("/v1/artifacts", params={"kind": "dataset", "name": DATASET})).json()["data"]:
                await asyncio.sleep(0.2)
    return key


@dataclass
class Side:
    """One server under load: its client, and what its rounds measured."""

    client: httpx.AsyncClient
    drained: Callable[[], Awaitable[None]] | None = None  # waits until what the round sent has been published
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    async def round(self, concurrency: int, per_connection: int, *, measured: bool = True) -> None:
        """`per_connection` submissions on each of `concurrency` connections at once."""
        latencies: list[float] = []

        async def connection() -> None:
            for _ in range(per_connection):
                started = time.perf_counter()
                response = await self.client.post("/v1/jobs/training", json=BODY)
                if response.status_code != 202:
                    raise RuntimeError(f"{response.status_code}: {response.text}")
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(concurrency)))
        if self.drained:
            await self.drained()  # a round ends once its last command has been published, not only answered
        if measured:
            self.seconds += time.perf_counter() - started
            self.latencies += latencies


def client(url: str, key: str | None, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60)


async def outbox_drained(conn: asyncpg.Connection) -> None:
    while await conn.fetchval(f'SELECT count(*) FROM "{GATEWAY_SCHEMA}".outbox'):
        await asyncio.sleep(0.005)


def summary(name: str, latencies: list[float], seconds: float) -> tuple[str, float]:
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    rate = len(latencies) / seconds
    return f"  {name:<8} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {rate:8.0f} requests/s", rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    async with isolated_stack() as settings:
        registry_port, gateway_port, bare_port = free_port(), free_port(), free_port()
        registry_url = f"http://127.0.0.1:{registry_port}"
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        registry_env = {
            "MODELOPS_SERVICE_NAME": "registry",
            "MODELOPS_REGISTRY_PORT": str(registry_port),
            "MODELOPS_REGISTRY_KEYS_DIR": str(settings.state_dir / "keys"),
        }
        gateway_env = {
            "MODELOPS_GATEWAY_PORT": str(gateway_port),
            "MODELOPS_GATEWAY_SCHEMA": GATEWAY_SCHEMA,
            "MODELOPS_REGISTRY_URL": registry_url,
        }
        bare_args = [
            "-m",
            "uvicorn",
            "--factory",
            "gateway:bare_app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
        ]
        bare_env = {"PYTHONPATH": str(Path(__file__).parent)}
        bare_url = f"http://127.0.0.1:{bare_port}"
        async with (
            process(["-m", "modelops_registry"], registry_env, registry_url),
            process(["-m", "modelops_gateway"], gateway_env, gateway_url),
            process(bare_args, bare_env, bare_url, ready="/docs"),
        ):
            key = await prepare(settings, gateway_url, settings.state_dir)
            conn = await asyncpg.connect(settings.database_url.get_secret_value())
            async with (
                client(gateway_url, key, args.concurrency) as ours_client,
                client(bare_url, None, args.concurrency) as bare_client,
            ):
                ours = Side(ours_client, drained=lambda: outbox_drained(conn))
                bare = Side(bare_client)
                per_connection = args.requests // args.concurrency // ROUNDS
                for side in (ours, bare):
                    await side.round(args.concurrency, 2, measured=False)  # warm connections and caches
                # Rounds alternate, each side first in turn, so that other load on the machine weighs on both alike.
                for index in range(ROUNDS):
                    for side in (ours, bare) if index % 2 == 0 else (bare, ours):
                        await side.round(args.concurrency, per_connection)
            await conn.close()
    ours_line, ours_rate = summary("gateway", ours.latencies, ours.seconds)
    bare_line, bare_rate = summary("bare", bare.latencies, bare.seconds)
    print(
        f"gateway benchmark: {len(ours.latencies)} training-job submissions each side, {args.concurrency} concurrent"
        f" connections, {ROUNDS} alternating rounds"
    )
    print(ours_line + "   (until every command was published)")
    print(bare_line)
    print(f"  ratio gateway/bare requests/s {ours_rate / bare_rate:.3f}   (target ≥ 0.3)")


if __name__ == "__main__":
    asyncio.run(main())

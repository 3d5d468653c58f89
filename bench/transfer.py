"""Transfer benchmark: dataset upload and artifact import through the gateway's HTTP API, in MB/s, against the raw
transfer of the same bytes.

Ours, on gateway and registry processes of a fresh embedded stack (started as bench/gateway.py starts them), with
httpx multipart bodies as the SDK sends them:
    dataset upload   `POST /v1/datasets` of a chat JSONL file (`--dataset-mb`): spooled and hashed, every row
                     validated, one Delta commit, the version announced; done at the 201
    artifact import  `POST /v1/artifacts` of a PEFT adapter folder (`--artifact-mb` of safetensors and its config):
                     streamed into the object store, hashed, the submission enqueued; done at the 202. Then
                     `→ registered`: until `GET /v1/artifacts/{id}` answers 200 (the registry re-hashed and signed)

Baselines in the same run, what moving the same bytes costs without the platform:
    bare HTTP        the same multipart body, same client, to a bare Starlette endpoint (a uvicorn process) that
                     streams the request into a file and fsyncs it: the raw HTTP transfer
    store.put        the same files put straight into the stack's object store with the library the gateway uses
                     (`ObjectStore.put` of the local file: copy and fsync), no HTTP

    python bench/transfer.py [--dataset-mb 50] [--artifact-mb 100] [--repeats 3]

Each figure is payload MB (10^6 bytes, the files' own size, not the multipart framing) over the request's time; the
three ways run in turn, in alternating order, and each figure is the median (min-max) of the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from figures import spread
from isolated_stack import START_TIMEOUT_S, isolated_stack, process
from modelops_shared.devstack import free_port
from modelops_shared.storage import ObjectStore, open_store
from registry_load import write_adapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MB = 10**6
GATEWAY_SCHEMA = "gateway"
VOCABULARY = (
    "the model adapter dataset training token layer weight gradient loss batch step epoch answer question prompt"
    " user assistant system context window attention head rank alpha learning rate schedule warmup evaluation"
    " metric accuracy registry artifact signature digest deploy replica inference latency throughput memory"
)

Measure = Callable[[], Coroutine[Any, Any, float]]


def bare_app() -> Starlette:
    """The baseline endpoint: the request body streamed into a file, fsynced, removed; 201 with its size."""
    directory = Path(os.environ["BENCH_BARE_DIR"])

    async def upload(request: Request) -> Response:
        target = directory / uuid.uuid4().hex
        try:
            with target.open("wb") as file:
                async for chunk in request.stream():
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            return JSONResponse({"bytes": target.stat().st_size}, 201)
        finally:
            target.unlink(missing_ok=True)

    async def ready(request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/readyz", ready)])


def write_chat_jsonl(path: Path, size: int, seed: int) -> None:
    """Chat rows (a user turn and a longer assistant turn, ~1 KB a row) until the file holds about `size` bytes."""
    rng, words = random.Random(seed), VOCABULARY.split()
    written, row = 0, 0
    with path.open("w") as file:
        while written < size:
            user = " ".join(rng.choices(words, k=rng.randint(20, 60)))
            assistant = " ".join(rng.choices(words, k=rng.randint(60, 200)))
            messages = [{"role": "user", "content": f"{row}: {user}?"}, {"role": "assistant", "content": assistant}]
            line = json.dumps({"messages": messages}) + "\n"
            file.write(line)
            written += len(line)
            row += 1


def prepare(directory: Path, dataset_mb: float, artifact_mb: float) -> tuple[Path, list[Path]]:
    """The chat JSONL file and the adapter folder's files, under `directory`; and the bare endpoint's folder."""
    (directory / "bare").mkdir()
    adapter = directory / "adapter"
    adapter.mkdir()
    dataset = directory / "chat.jsonl"
    write_chat_jsonl(dataset, int(dataset_mb * MB), 1)
    write_adapter(adapter, int(artifact_mb * MB), np.random.default_rng(1))
    return dataset, sorted(adapter.iterdir())


def size_mb(paths: list[Path]) -> float:
    return sum(path.stat().st_size for path in paths) / MB


async def timed_post(
    client: httpx.AsyncClient, url: str, data: dict[str, str], parts: list[tuple[str, str, Path]], expect: int
) -> tuple[float, httpx.Response]:
    """Seconds for one multipart POST of `parts` (field, filename, local path), streamed from the files."""
    with contextlib.ExitStack() as stack:
        files = [(part, (name, stack.enter_context(path.open("rb")))) for part, name, path in parts]
        started = time.perf_counter()
        response = await client.post(url, data=data, files=files)
        seconds = time.perf_counter() - started
    if response.status_code != expect:
        raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:500]}")
    return seconds, response


async def store_put(store: ObjectStore, paths: list[Path]) -> float:
    """Seconds to put the files straight into the object store (then removed)."""
    prefix = f"bench/transfer/{uuid.uuid4().hex}"
    started = time.perf_counter()
    for path in paths:
        await store.put(f"{prefix}/{path.name}", path)
    seconds = time.perf_counter() - started
    for path in paths:
        await store.delete(f"{prefix}/{path.name}")
    return seconds


async def developer_key(gateway_url: str, state_dir: Path) -> str:
    admin_key = (state_dir / "admin.key").read_text().strip()
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as client:
        created = await client.post(
            "/v1/api-keys",
            json={"name": "bench-transfer", "role": "developer", "rate_limit": "10000000/minute"},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        created.raise_for_status()
        key: str = created.json()["key"]
    return key


@dataclass
class Transfers:
    """The same files moved three ways; each method returns the seconds the move took."""

    gateway: httpx.AsyncClient
    bare: httpx.AsyncClient
    store: ObjectStore
    dataset: Path
    adapter_files: list[Path]
    registered_s: list[float] = field(default_factory=list)  # import → registered, per gateway import

    def _dataset_fields(self) -> tuple[dict[str, str], list[tuple[str, str, Path]]]:
        return {"name": f"bench-transfer-{uuid.uuid4().hex[:8]}", "schema": "chat"}, [
            ("file", self.dataset.name, self.dataset)
        ]

    def _import_fields(self) -> tuple[dict[str, str], list[tuple[str, str, Path]]]:
        name = f"bench-transfer-adapter-{uuid.uuid4().hex[:8]}"
        return {"kind": "adapter", "name": name}, [("files", p.name, p) for p in self.adapter_files]

    async def dataset_gateway(self) -> float:
        return (await timed_post(self.gateway, "/v1/datasets", *self._dataset_fields(), 201))[0]

    async def dataset_bare(self) -> float:
        return (await timed_post(self.bare, "/upload", *self._dataset_fields(), 201))[0]

    async def dataset_put(self) -> float:
        return await store_put(self.store, [self.dataset])

    async def import_gateway(self) -> float:
        started = time.perf_counter()
        seconds, accepted = await timed_post(self.gateway, "/v1/artifacts", *self._import_fields(), 202)
        # Registered: the registry re-hashed the stored files and signed them. Waited for here also so that its
        # hashing never overlaps the next measurement.
        async with asyncio.timeout(START_TIMEOUT_S):
            while (await self.gateway.get(f"/v1/artifacts/{accepted.json()['id']}")).status_code != 200:
                await asyncio.sleep(0.05)
        self.registered_s.append(time.perf_counter() - started)
        return seconds

    async def import_bare(self) -> float:
        return (await timed_post(self.bare, "/upload", *self._import_fields(), 201))[0]

    async def import_put(self) -> float:
        return await store_put(self.store, self.adapter_files)

    async def warm(self, directory: Path) -> None:
        """Connections, the gateway's key cache and its first Delta table: a small upload each side, not measured."""
        small = directory / "warm.jsonl"
        await asyncio.to_thread(write_chat_jsonl, small, 10_000, 2)
        parts = [("file", small.name, small)]
        await timed_post(self.gateway, "/v1/datasets", {"name": "bench-warm", "schema": "chat"}, parts, 201)
        await timed_post(self.bare, "/upload", {}, parts, 201)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-mb", type=float, default=50)
    parser.add_argument("--artifact-mb", type=float, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        files = Path(tmp)
        dataset, adapter_files = await asyncio.to_thread(prepare, files, args.dataset_mb, args.artifact_mb)
        mb = {"dataset": size_mb([dataset]), "import": size_mb(adapter_files)}
        results: dict[tuple[str, str], list[float]] = {}
        async with isolated_stack() as settings:
            registry_port, gateway_port, bare_port = free_port(), free_port(), free_port()
            registry_url = f"http://127.0.0.1:{registry_port}"
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            bare_url = f"http://127.0.0.1:{bare_port}"
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
            bare_args = ["-m", "uvicorn", "--factory", "transfer:bare_app", "--port", str(bare_port)]
            bare_env = {"PYTHONPATH": str(Path(__file__).parent), "BENCH_BARE_DIR": str(files / "bare")}
            async with (
                process(["-m", "modelops_registry"], registry_env, registry_url),
                process(["-m", "modelops_gateway"], gateway_env, gateway_url),
                process([*bare_args, "--log-level", "warning"], bare_env, bare_url),
            ):
                key = await developer_key(gateway_url, settings.state_dir)
                auth = {"Authorization": f"Bearer {key}"}
                async with (
                    httpx.AsyncClient(base_url=gateway_url, headers=auth, timeout=600) as gateway,
                    httpx.AsyncClient(base_url=bare_url, timeout=600) as bare,
                ):
                    store = open_store(settings.store_url, settings)
                    transfers = Transfers(gateway, bare, store, dataset, adapter_files)
                    await transfers.warm(files)
                    ways: dict[str, dict[str, Measure]] = {
                        "dataset": {
                            "gateway": transfers.dataset_gateway,
                            "bare": transfers.dataset_bare,
                            "put": transfers.dataset_put,
                        },
                        "import": {
                            "gateway": transfers.import_gateway,
                            "bare": transfers.import_bare,
                            "put": transfers.import_put,
                        },
                    }
                    # The three ways in turn, in alternating order, so that other load weighs on them alike.
                    for repeat in range(args.repeats):
                        for work, sides in ways.items():
                            order = list(sides.items())
                            for side, move in order if repeat % 2 == 0 else reversed(order):
                                results.setdefault((work, side), []).append(mb[work] / await move())
        results[("import", "registered")] = [mb["import"] / s for s in transfers.registered_s]

    print("transfer: through the gateway's HTTP API (httpx multipart, as the SDK sends) against the raw transfer of")
    print(f"the same bytes; MB/s, {args.repeats} repeats, medians (min-max); ratios: gateway ÷ each baseline")
    print(f"  {'':28} {'gateway':>17} {'bare HTTP':>17} {'store.put':>17} {'÷ bare':>7} {'÷ put':>7}")
    labels = {
        "dataset": f"dataset upload ({mb['dataset']:.0f} MB)",
        "import": f"artifact import ({mb['import']:.0f} MB)",
    }
    for work, label in labels.items():
        ours, bare_mbs, put = (results[(work, side)] for side in ("gateway", "bare", "put"))
        ratio_bare = statistics.median(ours) / statistics.median(bare_mbs)
        ratio_put = statistics.median(ours) / statistics.median(put)
        print(
            f"  {label:28} {spread(ours, 0):>17} {spread(bare_mbs, 0):>17} {spread(put, 0):>17}"
            f" {ratio_bare:7.2f} {ratio_put:7.2f}"
        )
    registered = results[("import", "registered")]
    ratio_bare = statistics.median(registered) / statistics.median(results[("import", "bare")])
    ratio_put = statistics.median(registered) / statistics.median(results[("import", "put")])
    print(f"  {'  → registered':28} {spread(registered, 0):>17} {'':>17} {'':>17} {ratio_bare:7.2f} {ratio_put:7.2f}")


if __name__ == "__main__":
    asyncio.run(main())

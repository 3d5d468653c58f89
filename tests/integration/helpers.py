"""What tests of every service need: a tap on topics, waiting until the registry has registered an artifact, datasets
committed and announced as the gateway does them, and the
barriers after which "nothing (more) arrived" can be asserted: an outbox sent, a consumer past a message, a tap
read to the end of its partitions; and calling internal services as another service would, with its token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Self

import asyncpg
import httpx
import pyarrow as pa
import torch
from aiokafka import AIOKafkaConsumer, TopicPartition
from deltalake import write_deltalake
from modelops_contracts import (
    ArtifactKind,
    ArtifactSubmitted,
    DatasetSchema,
    DatasetVersionCreated,
    Envelope,
    LineageRelation,
    Message,
    ParentRef,
    Topic,
    decode,
)
from modelops_shared import snn_router
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.devstack import free_port
from modelops_shared.service_tokens import BEARER, ServiceIdentity
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_shared.storage.delta import dataset_table_uri, delta_storage_options
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

WAIT_S = 120
POLL_S = 0.05


def identity(service: str = "gateway") -> ServiceIdentity:
    """Call internal services as `service` does: with its key, from the stack's key directory (the embedded stack's
    MODELOPS_SERVICE_KEYS_DIR)."""
    return ServiceIdentity.from_settings(Settings(service_name=service))


def service_auth(audience: str, service: str = "gateway") -> httpx.Auth:
    return identity(service).auth(audience)


def acting_as(user: str, role: str, audience: str = "registry") -> dict[str, str]:
    """Headers of a gateway call made for `user` in `role`: the only way an internal service learns who acts."""
    return {"Authorization": BEARER + identity().token(audience, subject=user, role=role)}


class ActingFor(httpx.Auth):
    """The gateway's token for `user` in `role`, addressed to `audience`, fresh for each request (a token lives a
    minute): how a test calls an internal service's user routes."""

    def __init__(self, audience: str, user: str, role: str = "developer") -> None:
        self.audience, self.user, self.role = audience, user, role

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        token = identity().token(self.audience, subject=self.user, role=self.role)
        request.headers["Authorization"] = BEARER + token
        yield request


class TopicTap:
    """Every message on `topics` from the moment the tap started (from the topics' beginning with `from_beginning`),
    decoded and grouped by subject. Use as `async with TopicTap(settings, TOPIC) as tap:`."""

    def __init__(self, settings: Settings, *topics: Topic, from_beginning: bool = False) -> None:
        self.partitions = [TopicPartition(topic.name, p) for topic in topics for p in range(topic.partitions)]
        self.from_beginning = from_beginning
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=None, fetch_max_wait_ms=50
        )
        self.messages: list[Message] = []
        self._by_subject: dict[str, list[Message]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        self.consumer.assign(self.partitions)
        if self.from_beginning:
            await self.consumer.seek_to_beginning(*self.partitions)
        else:
            await self.consumer.seek_to_end(*self.partitions)
        for partition in self.partitions:
            await self.consumer.position(partition)  # resolve the start now, not at the first fetch
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = {name: value.decode() for name, value in record.headers}
                    _, body = decode(record.key, record.value, headers)
                    self.messages.append(body)
                    self._by_subject[body.subject()].append(body)

    def of(self, subject: str, *kinds: type[Message]) -> list[Any]:
        """The messages about `subject` (a job id, an artifact id, a deployment name) so far, of `kinds` if given."""
        return [m for m in self._by_subject[subject] if not kinds or isinstance(m, kinds)]

    async def wait_for(self, subject: str, *kinds: type[Message], count: int = 1, timeout: float = WAIT_S) -> list[Any]:
        """Every message about `subject` of `kinds`, once at least `count` of them arrived."""
        async with asyncio.timeout(timeout):
            while len(found := self.of(subject, *kinds)) < count:
                await asyncio.sleep(POLL_S)
        return found

    async def first(self, subject: str, *kinds: type[Message], timeout: float = WAIT_S) -> Any:
        """The first message about `subject` of one of `kinds`, once it arrived."""
        return (await self.wait_for(subject, *kinds, timeout=timeout))[0]

    async def caught_up(self, timeout: float = WAIT_S) -> None:
        """Returns once the tap has read every record its partitions hold now: the end offsets are the sentinel,
        after which a message that has not arrived was not published before this call."""
        ends = await self.consumer.end_offsets(self.partitions)
        async with asyncio.timeout(timeout):
            for partition, end in ends.items():
                while await self.consumer.position(partition) < end:
                    await asyncio.sleep(POLL_S)


async def registered(client: httpx.AsyncClient, artifact_id: str, timeout: float = WAIT_S) -> dict[str, Any]:
    """The artifact once the registry has registered it, asked through `client` (the registry, or a gateway that
    forwards to it); fails at once on a rejection, and after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/v1/artifacts/{artifact_id}")
            body: dict[str, Any] = response.json()
            if response.status_code == 200:
                return body
            assert body.get("submission_status") != "rejected", body
            await asyncio.sleep(0.1)


async def outbox_sent(db: asyncpg.Pool | asyncpg.Connection, timeout: float = WAIT_S) -> None:
    """Returns once every message staged so far in the outbox of `db`'s schema has been published and acknowledged
    (the relay deletes a row only then)."""
    staged = await db.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
    async with asyncio.timeout(timeout):
        while await db.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE id <= $1)", staged):
            await asyncio.sleep(POLL_S)


async def consumed(
    db: asyncpg.Pool | asyncpg.Connection, envelopes: Iterable[Envelope], timeout: float = WAIT_S
) -> None:
    """Returns once the idempotent consumers of `db`'s schema have applied every message of `envelopes` (and
    committed what they staged with it): a later delivery of the same message is then a duplicate they skip."""
    ids = {envelope.id for envelope in envelopes}
    applied = "SELECT count(DISTINCT message_id) FROM processed_messages WHERE message_id = any($1::text[])"
    async with asyncio.timeout(timeout):
        while await db.fetchval(applied, list(ids)) < len(ids):
            await asyncio.sleep(POLL_S)


def spawn_service(service: str, settings: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m modelops_<service>` as its own process (a worker a test can kill), with `settings` (MODELOPS_*
    variables without the prefix) over this process's environment, and a free HTTP port; output appended to `log`."""
    env = {
        **os.environ,
        "MODELOPS_SERVICE_NAME": service,
        f"MODELOPS_{service.upper()}_PORT": str(free_port()),
        **{f"MODELOPS_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"modelops_{service}"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def create_dataset(
    settings: Settings, bus: Bus, registry: httpx.AsyncClient, rows: list[dict[str, Any]], schema: DatasetSchema
) -> tuple[str, int]:
    """Commit `rows` as a new Delta table and announce the version, as the gateway's dataset path does; waits until
    the registry knows it. Returns (name, version)."""
    name = f"ds-{uuid.uuid4().hex[:8]}"
    uri = dataset_table_uri(settings, name)
    await asyncio.to_thread(
        write_deltalake, uri, pa.Table.from_pylist(rows), storage_options=delta_storage_options(settings)
    )
    dataset_id = f"dataset-{name}-v0"
    await bus.publish(
        DatasetVersionCreated(
            dataset_id=dataset_id,
            name=name,
            version=0,
            schema_kind=schema,
            uri=uri,
            num_rows=len(rows),
            size_bytes=1,
            created_by="alice",
        )
    )
    await registered(registry, dataset_id)
    return name, 0


def make_lora(base_dir: Path, output: Path) -> Path:
    """A LoRA of SmolLM2 on q/v with small random B matrices: it changes the model measurably, as a trained one does
    (the pipeline's arithmetic does not care how the deltas were learned; the demo quantizes a trained adapter)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(0.02)
    peft_model.save_pretrained(output)
    return output


async def submit_router(settings: Settings, bus: Bus, registry: httpx.AsyncClient, directory: Path) -> str:
    """The router in `directory` submitted as its training job would (held-out accuracy 0.9), registered; its id."""
    config = snn_router.load(directory).config
    store = open_store(settings.store_url, settings)
    artifact_id = f"router-{uuid.uuid4().hex[:8]}"
    files = await upload_directory(store, directory, f"artifacts/{artifact_id}")
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.ROUTER,
            name=artifact_id,
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=files,
            parents=[ParentRef(artifact_id=config.embedding_model, relation=LineageRelation.EMBEDDED_WITH)],
            metrics={"eval_accuracy": 0.9},
            created_by="alice",
            metadata={"labels": list(config.labels), "embedding_model": config.embedding_model},
        )
    )
    await registered(registry, artifact_id)
    return artifact_id

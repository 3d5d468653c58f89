"""Deployments: fetch verified artifacts, load base models and adapters, and route model names to them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from modelops_contracts import GPU_FORMATS, ArtifactKind, Deploy, DeploymentFailed, DeploymentReady, DeploymentRemoved
from modelops_shared.artifacts import ArtifactClient, ArtifactError, ArtifactNotFound, VerifiedArtifact

from . import metrics
from .backend import Backend, TransformersBackend, pick_device
from .batching import Scheduler
from .gguf_engine import LlamaCppBackend
from .relay import RelayBackend
from .routers import Routers
from .settings import InferenceSettings
from .vllm import VllmBackend, choose_backend

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed"]
# Backoff between fetches of an adapter the registry has not registered yet.
FIRST_RETRY_S = 0.25
MAX_RETRY_S = 5.0


@dataclass(frozen=True)
class Route:
    deployment: str
    base_id: str
    adapter_id: str | None
    adapter_path: Path | None


@dataclass
class Deployment:
    name: str
    base_model: str
    adapters: list[str]
    status: Status = "loading"
    reason: str = ""
    base_id: str | None = None
    adapter_ids: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)


@dataclass
class Engine:
    """transformers + PEFT: requests go through this service's scheduler."""

    backend: Backend
    scheduler: Scheduler
    kind: ClassVar[str] = "transformers"

    def abort(self, adapter: str, reason: str) -> None:
        self.scheduler.abort(adapter, reason)

    def busy(self) -> bool:
        return self.scheduler.busy()

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.backend.close()


@dataclass
class ProxyEngine:
    """An engine that answers OpenAI bodies itself: a vLLM server (which batches by itself), or llama.cpp serving a
    GGUF in this process."""

    backend: RelayBackend
    kind: str

    def abort(self, adapter: str, reason: str) -> None:
        self.backend.abort(adapter, reason)

    def busy(self) -> bool:
        return self.backend.busy()

    async def close(self) -> None:
        await self.backend.close()


class Deployments:
    """Every deployment of this replica, the engines they share, and the model names they answer to.

    A base model is loaded once per artifact id and shared by every deployment on it; its adapters are loaded onto it by
    artifact id. A deployment answers to its own name (its first adapter, or the base model when it has none), to
    `<name>/<adapter artifact name>` for each adapter, and, for an adapter produced by a training job, to
    `ft:<base model name>:<job suffix>:<job id>` as OpenAI names fine-tuned models.

    Each base model gets one engine of the configured kind: `Engine` (transformers + PEFT under this service's own
    continuous-batching scheduler) or `ProxyEngine` (a vLLM server that batches by itself; see vllm.py).

    A router artifact deploys as a router (routers.py): it answers no completion itself, and its deployment uses the
    router and its embedding model (reported as the deployment's one adapter, so that revoking either stops it).

    Deploy, undeploy, revoke and restore take turns (one lock), and a name commanded since this process started is never
    overwritten by a restore from the registry's older view (see restore.py).

    With `inference_idle_unload_s`, a base model no request has used for that long, and none is using, is unloaded (its
    engine closed, its memory freed); its deployments stay ready, and the next request loads it again from the verified
    files still on disk (a cold start, measured in `modelops_inference_cold_start_seconds`).

    A Deploy may arrive before the registry has registered one of its adapters: a training job's adapter is submitted by
    the trainer and signed by the registry asynchronously, while the gateway deploys it as soon as the job succeeds. So
    an adapter the registry does not know yet, or has recorded but not signed, is fetched again with backoff for up to
    `inference_artifact_wait_s` before the deployment fails; it stays `loading` meanwhile (holding the turn, as a model
    load does). The base model is fetched first and is not waited for.
    """

    def __init__(self, settings: InferenceSettings, artifacts: ArtifactClient) -> None:
        self.settings = settings
        self.artifacts = artifacts
        self.deployments: dict[str, Deployment] = {}
        self.engines: dict[str, Engine | ProxyEngine] = {}
        self.routes: dict[str, Route] = {}
        self.routers = Routers(artifacts)
        self.backend_kind = choose_backend(settings.inference_backend)
        self.registry = artifacts.http
        self.replica = settings.inference_replica
        self._turn = asyncio.Lock()
        self._commanded: set[str] = set()  # names a command has touched since start: a restore leaves them alone
        self._bases: dict[str, VerifiedArtifact] = {}  # every base model a deployment serves, loaded or not
        self._last_used: dict[str, float] = {}  # base model id → when a request last asked for it (monotonic)

    async def close(self) -> None:
        for base_id in list(self.engines):
            await self._drop_engine(base_id)

    def route(self, model: str) -> Route | None:
        return self.routes.get(model)

    async def engine_for(self, route: Route) -> Engine | ProxyEngine:
        """The engine that serves `route`, loaded again first if it was unloaded for idleness."""
        self._last_used[route.base_id] = time.monotonic()
        engine = self.engines.get(route.base_id)
        if engine is not None:
            return engine
        async with self._turn:
            engine = self.engines.get(route.base_id)  # another request may have loaded it meanwhile
            if engine is None:
                began = time.perf_counter()
                engine = await self._engine(self._bases[route.base_id])
                took = time.perf_counter() - began
                metrics.COLD_START_SECONDS.labels(route.base_id).observe(took)
                log.info("loaded %s again after idleness in %.2f s", route.base_id, took)
        return engine

    async def unload_idle(self, idle_s: float) -> list[str]:
        """Unload every base model that no request has used for `idle_s` seconds and none is using now; which."""
        unloaded = []
        async with self._turn:
            now = time.monotonic()
            for base_id, engine in list(self.engines.items()):
                if engine.busy() or now - self._last_used.get(base_id, now) < idle_s:
                    continue
                await self._drop_engine(base_id)
                metrics.IDLE_UNLOADS.labels(base_id).inc()
                log.info("unloaded %s after %.0f s without a request", base_id, now - self._last_used[base_id])
                unloaded.append(base_id)
        return unloaded

    @asynccontextmanager
    async def unloading_idle(self, idle_s: float) -> AsyncIterator[None]:
        """Unload idle base models while the block runs (checking four times per `idle_s`, at least once a minute)."""

        async def unload() -> None:
            while True:
                await asyncio.sleep(min(idle_s / 4, 60.0))
                await self.unload_idle(idle_s)

        task = asyncio.create_task(unload(), name="idle-unload")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def served_artifacts(self) -> set[str]:
        """Every base model and adapter a ready deployment serves."""
        ready = [d for d in self.deployments.values() if d.status == "ready"]
        return {artifact for d in ready for artifact in (d.base_id, *d.adapter_ids) if artifact}

    async def deploy(self, command: Deploy) -> DeploymentReady | DeploymentFailed:
        """Fetch and verify every artifact, then load; any refusal fails the whole deployment with its reason."""
        async with self._turn:
            self._commanded.add(command.name)
            return await self._deploy(command)

    async def restore(self, command: Deploy) -> DeploymentReady | DeploymentFailed | None:
        """Deploy what the registry recorded as wanted, verified as any deploy; None when a command since start has
        already decided about this name (it is newer than the registry's view)."""
        async with self._turn:
            if command.name in self._commanded or command.name in self.deployments:
                return None
            return await self._deploy(command)

    async def _deploy(self, command: Deploy) -> DeploymentReady | DeploymentFailed:
        if command.name in self.deployments:
            await self._unroute(command.name)
        deployment = Deployment(command.name, command.base_model, list(command.adapters))
        self.deployments[command.name] = deployment
        try:
            base = await self._fetch_model(command.base_model)
            if base.kind == ArtifactKind.ROUTER.value:
                return await self._deploy_router(command, deployment, base)
            adapter_kind = ArtifactKind.QUANTIZED_MODEL if _is_gguf(base) else ArtifactKind.ADAPTER
            adapters = [await self._fetch_adapter(ref, adapter_kind) for ref in command.adapters]
            for adapter in adapters:
                _check_fits(adapter, base)
            engine = await self._engine(base)
            for adapter in adapters:
                # Loaded now, so a broken adapter fails the deployment instead of its first request.
                await engine.backend.acquire_adapter(adapter.id, adapter.path)
                engine.backend.release_adapter(adapter.id)
            metrics.LOADED_ADAPTERS.labels(base.id).set(len(engine.backend.loaded_adapters()))
        except Exception as error:
            deployment.status, deployment.reason = "failed", str(error)
            log.warning("deployment %s failed: %s", command.name, error)
            return DeploymentFailed(name=command.name, reason=str(error), replica=self.replica)
        deployment.base_id = base.id
        deployment.adapter_ids = [adapter.id for adapter in adapters]
        for alias, route in (await self._aliases(command.name, base, adapters)).items():
            self.routes[alias] = route
            deployment.models.append(alias)
        deployment.status = "ready"
        return DeploymentReady(
            name=command.name,
            base_model=base.id,
            adapters=deployment.adapter_ids,
            backend=engine.kind,
            replica=self.replica,
        )

    async def _deploy_router(
        self, command: Deploy, deployment: Deployment, artifact: VerifiedArtifact
    ) -> DeploymentReady:
        router = await self.routers.load(command.name, artifact)
        # A restore replays what the registry recorded as served: the router's embedding model as its one adapter.
        if command.adapters not in ([], [router.embedder_id]):
            self.routers.drop(command.name)
            raise ArtifactError(f"{artifact.id} is a router: its targets are deployments, it takes no adapters")
        deployment.base_id, deployment.adapter_ids = artifact.id, [router.embedder_id]
        deployment.models, deployment.status = [command.name], "ready"
        return DeploymentReady(
            name=command.name,
            base_model=artifact.id,
            adapters=deployment.adapter_ids,
            backend="snn-router",
            replica=self.replica,
        )

    async def _fetch_model(self, ref: str) -> VerifiedArtifact:
        """The verified model a deployment serves: a base model (transformers or vLLM), a GGUF quantized_model
        (llama.cpp) that is a whole model, not a LoRA, or a router."""
        model = await self.artifacts.fetch(
            ref, ArtifactKind.BASE_MODEL, also=(ArtifactKind.QUANTIZED_MODEL, ArtifactKind.ROUTER)
        )
        if _is_gguf(model) and _metadata(model).get("role") == "lora":
            raise ArtifactError(f"{model.id} is a GGUF LoRA: deploy it as an adapter on a GGUF model")
        return model

    async def _fetch_adapter(self, ref: str, kind: ArtifactKind) -> VerifiedArtifact:
        """The verified adapter, waiting with backoff while the registry has not registered it yet."""
        deadline = asyncio.get_running_loop().time() + self.settings.inference_artifact_wait_s
        delay = FIRST_RETRY_S
        while True:
            try:
                return await self.artifacts.fetch(ref, kind)
            except ArtifactError as error:
                left = deadline - asyncio.get_running_loop().time()
                if not _not_registered_yet(error) or left <= 0:
                    raise
                log.info("adapter %s is not registered yet (%s); fetching again in %.2f s", ref, error, delay)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, MAX_RETRY_S)

    async def undeploy(self, name: str) -> DeploymentRemoved | None:
        async with self._turn:
            self._commanded.add(name)
            if name not in self.deployments:
                return None
            await self._unroute(name)
            del self.deployments[name]
            return DeploymentRemoved(name=name, reason="undeployed", replica=self.replica)

    async def revoke(self, artifact_id: str, reason: str) -> list[DeploymentFailed]:
        """Stop serving every deployment that uses the revoked artifact, and unload it."""
        async with self._turn:
            return await self._revoke(artifact_id, reason)

    async def _revoke(self, artifact_id: str, reason: str) -> list[DeploymentFailed]:
        failed = []
        for deployment in list(self.deployments.values()):
            if artifact_id != deployment.base_id and artifact_id not in deployment.adapter_ids:
                continue
            why = f"artifact {artifact_id} was revoked: {reason}"
            await self._unroute(deployment.name, revoked=artifact_id, why=why)
            deployment.status, deployment.reason = "failed", why
            failed.append(DeploymentFailed(name=deployment.name, reason=why, replica=self.replica))
        return failed

    async def _engine(self, base: VerifiedArtifact) -> Engine | ProxyEngine:
        self._bases[base.id] = base
        self._last_used.setdefault(base.id, time.monotonic())
        engine = self.engines.get(base.id)
        if engine is None and _is_gguf(base):
            gguf = await LlamaCppBackend.load(base.id, base.path, self.settings)
            engine = self.engines[base.id] = ProxyEngine(gguf, "llama.cpp")
        elif engine is None and _is_compressed(base) and self.backend_kind != "vllm":
            raise ArtifactError(
                f"{base.id} is {_metadata(base).get('format')} (compressed-tensors): vLLM on a CUDA GPU serves it,"
                " and this replica runs transformers (MODELOPS_INFERENCE_BACKEND=vllm on a GPU replica)"
            )
        elif engine is None and self.backend_kind == "vllm":
            vllm = await VllmBackend.launch(base.id, base.path, self.settings)
            engine = self.engines[base.id] = ProxyEngine(vllm, "vllm")
        elif engine is None:
            backend = await TransformersBackend.load(
                base.id, base.path, pick_device(self.settings.inference_device), self.settings.inference_max_adapters
            )
            scheduler = Scheduler(
                backend, max_batch=self.settings.inference_max_batch, max_queue=self.settings.inference_max_queue
            )
            scheduler.start()
            engine = self.engines[base.id] = Engine(backend, scheduler)
        return engine

    async def _aliases(self, name: str, base: VerifiedArtifact, adapters: list[VerifiedArtifact]) -> dict[str, Route]:
        aliases = {
            name: Route(name, base.id, adapters[0].id, adapters[0].path)
            if adapters
            else Route(name, base.id, None, None)
        }
        for adapter in adapters:
            route = Route(name, base.id, adapter.id, adapter.path)
            aliases[f"{name}/{adapter.name}"] = route
            job_id = adapter.record.get("job_id")
            if job_id:
                aliases[f"ft:{base.name}:{await self._job_suffix(job_id)}:{job_id}"] = route
        return aliases

    async def _job_suffix(self, job_id: str) -> str:
        """The job's `suffix` as submitted (empty when it had none or the registry does not know the job)."""
        response = await self.registry.get(f"/v1/jobs/{job_id}")
        if response.status_code != 200:
            return ""
        return str((response.json().get("spec") or {}).get("suffix") or "")

    async def _unroute(self, name: str, *, revoked: str | None = None, why: str = "undeployed") -> None:
        """Take `name` off every route; unload what no other deployment uses (and the revoked artifact always)."""
        deployment = self.deployments[name]
        for alias in deployment.models:
            self.routes.pop(alias, None)
        deployment.models = []
        self.routers.drop(name)
        base_id = deployment.base_id
        others = [d for d in self.deployments.values() if d.name != name and d.status == "ready"]
        if base_id is not None and not any(d.base_id == base_id for d in others):
            self._bases.pop(base_id, None)  # nothing left to load it again for
            self._last_used.pop(base_id, None)
        if base_id is None or base_id not in self.engines:
            return
        engine = self.engines[base_id]
        for adapter_id in deployment.adapter_ids:
            if adapter_id == revoked or not any(adapter_id in d.adapter_ids for d in others):
                engine.abort(adapter_id, why)
                await engine.backend.remove_adapter(adapter_id)
        # A revoked base takes down every deployment on it; `revoke` visits (and reports) each of them.
        if base_id == revoked or not any(d.base_id == base_id for d in others):
            await self._drop_engine(base_id)
        else:
            metrics.LOADED_ADAPTERS.labels(base_id).set(len(engine.backend.loaded_adapters()))

    async def _drop_engine(self, base_id: str) -> None:
        engine = self.engines.pop(base_id, None)
        if engine is not None:
            await engine.close()
            with contextlib.suppress(KeyError):
                metrics.LOADED_ADAPTERS.remove(base_id)


def _metadata(artifact: VerifiedArtifact) -> dict[str, Any]:
    return dict(artifact.record.get("metadata") or {})


def _is_gguf(artifact: VerifiedArtifact) -> bool:
    return artifact.kind == ArtifactKind.QUANTIZED_MODEL.value and not _is_compressed(artifact)


def _is_compressed(artifact: VerifiedArtifact) -> bool:
    """An AWQ or GPTQ model by llm-compressor: compressed-tensors safetensors, which vLLM serves."""
    return artifact.kind == ArtifactKind.QUANTIZED_MODEL.value and _metadata(artifact).get("format") in GPU_FORMATS


def _check_fits(adapter: VerifiedArtifact, model: VerifiedArtifact) -> None:
    """An adapter rides on the base it was trained on, or on a GGUF quantized from that base; a GGUF LoRA only on a
    GGUF model."""
    trained_on = _metadata(adapter).get("base_model")
    if _is_gguf(adapter) and _metadata(adapter).get("role") != "lora":
        raise ArtifactError(f"{adapter.id} is a whole GGUF model, not a LoRA")
    bases = {model.id, _metadata(model).get("base_model")} - {None}
    if trained_on and trained_on not in bases:
        raise ArtifactError(f"adapter {adapter.id} was trained on {trained_on}, not on {model.id}")


def _not_registered_yet(error: ArtifactError) -> bool:
    """The registry does not know the artifact yet, holds its submission pending, or recorded it but has not signed it:
    what a fetch sees between a trainer's submission and the registry's signature (artifacts.ArtifactClient's
    messages name the last two)."""
    if isinstance(error, ArtifactNotFound):
        return True
    message = str(error)
    return " is pending" in message or "recorded but not signed" in message

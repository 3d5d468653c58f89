"""Console routes: the API the web console at /ui reads (any signed-in role: jobs, flows, topics, consumer groups,
serving figures, signature state; admin: message payloads, dead letters and their replay), and the console's
static files. The page itself holds no data: every figure comes from these routes, as the signed-in key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.staticfiles import StaticFiles
from modelops_contracts import all_topic_names
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_shared.bus.access import KafkaAccess
from modelops_shared.bus.dlq import replay

from ..deployments.domain import DeploymentNotFound
from ..deps import GatewayDep, InferenceDep
from ..web.auth import Admin, Viewer
from ..web.openapi import problems
from . import kafka_view, store
from .domain import JOB_KINDS, TopicNotFound
from .schemas import DeploymentServing, Flow, Replayed, ReplayRequest
from .serving_metrics import deployment_figures
from .signatures import SignatureState, signature_state

STATIC = Path(__file__).parent / "static"
TOPIC_NAMES = {name for name, _ in all_topic_names()}

router = APIRouter(prefix="/v1/console", tags=["console"], responses=problems(401, 403, 429))
static = StaticFiles(directory=STATIC, html=True)

FlowId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
TopicName = Annotated[str, PathParam(pattern=r"^[a-z0-9._-]{1,100}$")]
ArtifactId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
DeploymentName = Annotated[str, PathParam(pattern=DEPLOYMENT_NAME)]
JobKindName = Literal["training", "quantization", "evaluation", "indexing"]


@router.get("/jobs", response_model=list[store.JobSummary])
async def list_jobs(
    _: Viewer,
    gateway: GatewayDep,
    kind: JobKindName | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[store.JobSummary]:
    """The latest jobs of every kind (or one) whose start command the console recorded, with their status."""
    kinds = tuple(k for k in JOB_KINDS if kind in (None, k.name))
    return await store.recent_jobs(gateway.runtime.pool, kinds, limit)


@router.get("/flows/{flow_id}", response_model=Flow, responses=problems(404, 422))
async def get_flow(_: Viewer, gateway: GatewayDep, flow_id: FlowId) -> Flow:
    """A job's (or any correlation id's) messages across services in time order, with the gap between hops and
    the trace ids they carry."""
    hops = await store.flow(gateway.runtime.pool, flow_id)
    jaeger = gateway.settings.console_jaeger_url
    return Flow(
        id=flow_id,
        trace_ids=sorted({hop.trace_id for hop in hops if hop.trace_id}),
        trace_url=f"{jaeger.rstrip('/')}/trace/{{trace_id}}" if jaeger else None,
        hops=hops,
    )


@router.get("/topics", response_model=list[kafka_view.TopicState], responses=problems(502))
async def list_topics(_: Viewer, gateway: GatewayDep) -> list[kafka_view.TopicState]:
    """Every catalog topic and dead-letter topic with its partitions' offsets, producers and consumers."""
    return await kafka_view.topics(_console_kafka(gateway))


@router.get("/groups", response_model=list[kafka_view.GroupState])
async def list_groups(_: Viewer, gateway: GatewayDep) -> list[kafka_view.GroupState]:
    """Every consumer group with its committed offsets and lag per partition."""
    return await kafka_view.groups(_console_kafka(gateway))


@router.get("/topics/{name}/messages", response_model=list[kafka_view.KafkaMessage], responses=problems(404, 422))
async def list_messages(
    _: Admin,
    gateway: GatewayDep,
    name: TopicName,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    partition: Annotated[int | None, Query(ge=0, le=1000)] = None,
) -> list[kafka_view.KafkaMessage]:
    """The latest messages of a topic (admin: payloads are other users' data), newest first, headers and payload
    (the first 16 KiB)."""
    _check_topic(name, partition)
    return await kafka_view.recent_messages(_console_kafka(gateway), name, limit, partition)


@router.get("/dead-letters", response_model=list[kafka_view.KafkaMessage])
async def list_dead_letters(
    _: Admin, gateway: GatewayDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[kafka_view.KafkaMessage]:
    """The latest dead letters of every topic, newest first, with the `dlq_*` headers saying who failed and why."""
    kafka = _console_kafka(gateway)
    holding = [t.name for t in await kafka_view.topics(kafka) if t.dead_letter_topic and t.messages]
    letters = [m for name in holding for m in await kafka_view.recent_messages(kafka, name, limit)]
    return sorted(letters, key=lambda m: m.timestamp, reverse=True)[:limit]


@router.post("/dead-letters/replay", response_model=list[Replayed], responses=problems(404, 422))
async def replay_dead_letters(_: Admin, gateway: GatewayDep, body: ReplayRequest) -> list[Replayed]:
    """Publish a topic's dead letters again to their original topic, after a fix (admin). Each letter is replayed
    once: a second replay sends only what was dead-lettered since. Consumers are idempotent, so a letter whose
    effect had happened meanwhile takes effect once."""
    _check_topic(body.topic)
    sent = await replay(gateway.settings.as_console(), body.topic, consumer=body.consumer, dry_run=body.dry_run)
    return [Replayed(s.offset, s.topic, s.key.decode(errors="replace") if s.key else None, s.error) for s in sent]


@router.get("/deployments/{name}/serving", response_model=DeploymentServing, responses=problems(404, 422, 502, 503))
async def get_serving(_: Viewer, inference: InferenceDep, name: DeploymentName) -> DeploymentServing:
    """What a deployment served, per model: requests by outcome, tokens, time to first token and inter-token
    latency (mean, p50, p95), from the inference service's metrics."""
    if (await inference.request("GET", f"/v1/deployments/{name}")).status_code == 404:
        raise DeploymentNotFound(name)
    answer = await inference.request("GET", "/metrics")
    if answer.status_code != 200:
        raise inference.failure(answer.status_code)
    return DeploymentServing(name, deployment_figures(answer.text, name))


@router.get("/artifacts/{artifact_id}/signature", response_model=SignatureState, responses=problems(404, 502, 503))
async def get_signature(_: Viewer, gateway: GatewayDep, artifact_id: ArtifactId) -> SignatureState:
    """Whether the artifact's signed bundle verifies against the registry key that signed it."""
    return await signature_state(gateway.registry, artifact_id)


def _console_kafka(gateway: GatewayDep) -> KafkaAccess:
    return KafkaAccess.of(gateway.settings.as_console())


def _check_topic(name: str, partition: int | None = None) -> None:
    if name not in TOPIC_NAMES:
        raise TopicNotFound(name)
    if partition is not None and partition >= dict(all_topic_names())[name]:
        raise TopicNotFound(f"{name}[{partition}]")

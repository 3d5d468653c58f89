"""The topic catalog: the single source of truth for every topic, its partitions, key, producers,
consumers and message types. Nothing else spells a topic name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .artifacts import ArtifactPromoted, ArtifactRegistered, ArtifactRejected, ArtifactSubmitted
from .datasets import DatasetVersionCreated
from .deployments import Deploy, DeploymentFailed, DeploymentReady, DeploymentRemoved, Undeploy
from .diagnostics import Ping
from .evaluation import (
    CancelEvaluation,
    EvaluationCancelled,
    EvaluationCompleted,
    EvaluationFailed,
    EvaluationProgressed,
    EvaluationStarted,
    StartEvaluation,
)
from .imports import ImportGguf, ModelImported, ModelImportFailed
from .marketplace import ListingDownloaded, ListingInstalled
from .messages import Message
from .quantization import (
    CancelQuantization,
    QuantizationCancelled,
    QuantizationCompleted,
    QuantizationFailed,
    QuantizationProgressed,
    QuantizationStarted,
    StartQuantization,
)
from .rag import (
    CancelIndexing,
    IndexingCancelled,
    IndexingCompleted,
    IndexingFailed,
    IndexingProgressed,
    IndexingStarted,
    StartIndexing,
)
from .routing import RouteCorrected, RouteDecided
from .training import (
    CancelTraining,
    StartTraining,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
)
from .usage import DeploymentUsageRecorded, JobUsageRecorded

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    messages: tuple[type[Message], ...]
    description: str

    @property
    def dlq(self) -> str:
        """Where consumers park messages they could not handle (one partition, operators read it)."""
        return self.name + DLQ_SUFFIX


TRAINING_COMMANDS = Topic(
    name="training.commands.v1",
    partitions=6,
    key="job_id",
    producers=("gateway",),
    consumers=("trainer", "registry"),
    messages=(StartTraining, CancelTraining),
    description="Commands to start or cancel fine-tuning jobs.",
)
TRAINING_EVENTS = Topic(
    name="training.events.v1",
    partitions=6,
    key="job_id",
    producers=("trainer",),
    consumers=("registry", "gateway"),
    messages=(
        TrainingStarted,
        TrainingProgressed,
        TrainingCheckpointed,
        TrainingCompleted,
        TrainingFailed,
        TrainingCancelled,
    ),
    description="What happened to a fine-tuning job, in order per job.",
)
QUANTIZATION_COMMANDS = Topic(
    name="quantization.commands.v1",
    partitions=3,
    key="job_id",
    producers=("gateway",),
    consumers=("quantizer",),
    messages=(StartQuantization, CancelQuantization),
    description="Commands to start or cancel quantization jobs.",
)
QUANTIZATION_EVENTS = Topic(
    name="quantization.events.v1",
    partitions=3,
    key="job_id",
    producers=("quantizer",),
    consumers=("gateway",),
    messages=(
        QuantizationStarted,
        QuantizationProgressed,
        QuantizationCompleted,
        QuantizationFailed,
        QuantizationCancelled,
    ),
    description="What happened to a quantization job, in order per job.",
)
EVALUATION_COMMANDS = Topic(
    name="evaluation.commands.v1",
    partitions=3,
    key="job_id",
    producers=("gateway",),
    consumers=("evaluator",),
    messages=(StartEvaluation, CancelEvaluation),
    description="Commands to start or cancel evaluation jobs.",
)
EVALUATION_EVENTS = Topic(
    name="evaluation.events.v1",
    partitions=3,
    key="job_id",
    producers=("evaluator",),
    consumers=("gateway",),
    messages=(
        EvaluationStarted,
        EvaluationProgressed,
        EvaluationCompleted,
        EvaluationFailed,
        EvaluationCancelled,
    ),
    description="What happened to an evaluation job, in order per job.",
)
RAG_COMMANDS = Topic(
    name="rag.commands.v1",
    partitions=3,
    key="job_id",
    producers=("rag",),
    consumers=("rag",),
    messages=(StartIndexing, CancelIndexing),
    description="Commands to start or cancel the indexing of a RAG collection; any rag replica takes a job.",
)
RAG_EVENTS = Topic(
    name="rag.events.v1",
    partitions=3,
    key="job_id",
    producers=("rag",),
    consumers=("rag",),
    messages=(IndexingStarted, IndexingProgressed, IndexingCompleted, IndexingFailed, IndexingCancelled),
    description="What happened to an indexing job, in order per job (the rag service records it in its own tables).",
)
MARKETPLACE_EVENTS = Topic(
    name="marketplace.events.v1",
    partitions=3,
    key="artifact_id",
    producers=("marketplace",),
    consumers=("marketplace",),
    messages=(ListingDownloaded, ListingInstalled),
    description="Downloads and installs of marketplace listings; the counts are their projection.",
)
ROUTER_EVENTS = Topic(
    name="router.events.v1",
    partitions=3,
    key="router deployment name",
    producers=("gateway",),
    consumers=("gateway",),
    messages=(RouteDecided, RouteCorrected),
    description="A router's decisions and users' corrections of them; statistics and feedback rows are projections.",
)
USAGE_EVENTS = Topic(
    name="usage.events.v1",
    partitions=3,
    key="job_id, or deployment name",
    producers=("trainer", "quantizer", "evaluator", "rag", "inference"),
    consumers=("gateway",),
    messages=(JobUsageRecorded, DeploymentUsageRecorded),
    description="What each job and deployment used (CPU, GPU, memory, tokens); the gateway's usage and budgets.",
)
DATASET_EVENTS = Topic(
    name="datasets.events.v1",
    partitions=3,
    key="dataset name",
    producers=("gateway",),
    consumers=("registry",),
    messages=(DatasetVersionCreated,),
    description="New validated versions of Delta Lake datasets.",
)
ARTIFACT_SUBMISSIONS = Topic(
    name="artifacts.submissions.v1",
    partitions=6,
    key="artifact_id",
    producers=("gateway", "trainer", "quantizer", "evaluator", "rag"),
    consumers=("registry",),
    messages=(ArtifactSubmitted,),
    description="Stored artifacts waiting for the registry to verify and sign them.",
)
REGISTRY_ARTIFACTS = Topic(
    name="registry.artifacts.v1",
    partitions=6,
    key="artifact_id",
    producers=("registry",),
    consumers=("inference", "marketplace", "rag"),
    messages=(ArtifactRegistered, ArtifactRejected, ArtifactPromoted),
    description="Signed artifact state: registered, rejected, promoted (revocation included).",
)
DEPLOYMENT_COMMANDS = Topic(
    name="deployments.commands.v1",
    partitions=3,
    key="deployment name",
    producers=("gateway",),
    consumers=("inference", "registry"),
    messages=(Deploy, Undeploy),
    description="Commands to serve or stop serving a base model with adapters.",
)
DEPLOYMENT_EVENTS = Topic(
    name="deployments.events.v1",
    partitions=3,
    key="deployment name",
    producers=("inference",),
    consumers=("registry",),
    messages=(DeploymentReady, DeploymentFailed, DeploymentRemoved),
    description="What happened to a deployment.",
)
MODEL_COMMANDS = Topic(
    name="models.commands.v1",
    partitions=3,
    key="import_id",
    producers=("gateway",),
    consumers=("trainer",),
    messages=(ImportGguf,),
    description="Commands to import a model file a user uploaded (a GGUF) as signed artifacts.",
)
MODEL_EVENTS = Topic(
    name="models.events.v1",
    partitions=3,
    key="import_id",
    producers=("trainer",),
    consumers=("gateway",),
    messages=(ModelImported, ModelImportFailed),
    description="How a model import ended.",
)
DIAGNOSTICS_PINGS = Topic(
    name="diagnostics.pings.v1",
    partitions=1,
    key="ping_id",
    producers=("any",),
    consumers=("any",),
    messages=(Ping,),
    description="End-to-end bus probes used by the smoke flow and the bus benchmark.",
)

TOPICS: tuple[Topic, ...] = (
    TRAINING_COMMANDS,
    TRAINING_EVENTS,
    QUANTIZATION_COMMANDS,
    QUANTIZATION_EVENTS,
    EVALUATION_COMMANDS,
    EVALUATION_EVENTS,
    RAG_COMMANDS,
    RAG_EVENTS,
    MARKETPLACE_EVENTS,
    ROUTER_EVENTS,
    USAGE_EVENTS,
    DATASET_EVENTS,
    ARTIFACT_SUBMISSIONS,
    REGISTRY_ARTIFACTS,
    DEPLOYMENT_COMMANDS,
    DEPLOYMENT_EVENTS,
    MODEL_COMMANDS,
    MODEL_EVENTS,
    DIAGNOSTICS_PINGS,
)


def topic_of(message: type[Message] | Message) -> Topic:
    """The one topic a message type travels on."""
    message_type = message.type
    for topic in TOPICS:
        if any(m.type == message_type for m in topic.messages):
            return topic
    raise LookupError(f"no topic carries {message_type!r}")


def all_topic_names() -> Iterator[tuple[str, int]]:
    """Every topic with its partition count, dead-letter topics included."""
    for topic in TOPICS:
        yield topic.name, topic.partitions
        yield topic.dlq, 1

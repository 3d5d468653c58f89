"""ModelOps event contracts: envelope, topic catalog and the message models of every flow."""

from .artifacts import (
    ArtifactKind,
    ArtifactPromoted,
    ArtifactRegistered,
    ArtifactRejected,
    ArtifactSubmitted,
    FileDigest,
    LineageRelation,
    ParentRef,
    Stage,
)
from .catalog import TOPICS, Topic, all_topic_names, topic_of
from .datasets import DatasetSchema, DatasetVersionCreated
from .deployments import Deploy, DeploymentFailed, DeploymentReady, DeploymentRemoved, Undeploy
from .diagnostics import Ping
from .envelope import Envelope, EnvelopeError, KafkaRecord, decode, encode, new_envelope
from .messages import MESSAGE_TYPES, Message, message_class
from .training import (
    AdapterSpec,
    CancelTraining,
    Hyperparameters,
    PluginSpec,
    StartTraining,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
)

__all__ = [
    "MESSAGE_TYPES",
    "TOPICS",
    "AdapterSpec",
    "ArtifactKind",
    "ArtifactPromoted",
    "ArtifactRegistered",
    "ArtifactRejected",
    "ArtifactSubmitted",
    "CancelTraining",
    "DatasetSchema",
    "DatasetVersionCreated",
    "Deploy",
    "DeploymentFailed",
    "DeploymentReady",
    "DeploymentRemoved",
    "Envelope",
    "EnvelopeError",
    "FileDigest",
    "Hyperparameters",
    "KafkaRecord",
    "LineageRelation",
    "Message",
    "ParentRef",
    "Ping",
    "PluginSpec",
    "Stage",
    "StartTraining",
    "Topic",
    "TrainingCancelled",
    "TrainingCheckpointed",
    "TrainingCompleted",
    "TrainingFailed",
    "TrainingProgressed",
    "TrainingStarted",
    "Undeploy",
    "all_topic_names",
    "decode",
    "encode",
    "message_class",
    "new_envelope",
    "topic_of",
]

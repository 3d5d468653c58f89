"""Routers: one model name in front of several targets (deployments, RAG collections answered by a deployment), the
target chosen per request by a trained spiking network. The training spec of a router job, the decisions the gateway
records and the corrections users make to them (gateway → gateway, so that statistics and feedback rows are
projections exact under redelivery), and the HTTP models of the routes."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .artifacts import FREE_TEXT_PATTERN, SHA256_PATTERN
from .deployments import DEPLOYMENT_NAME
from .messages import Message
from .rag import COLLECTION_NAME_PATTERN

LABEL_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
Label = Annotated[str, Field(pattern=LABEL_PATTERN, description="A router's target, as its training rows name it")]
PROMPT_CHARS = 32_000
Prompt = Annotated[str, Field(min_length=1, max_length=PROMPT_CHARS, pattern=FREE_TEXT_PATTERN)]


class RouterSpec(BaseModel):
    """The spiking network a `snn_router` job trains (snnTorch leaky integrate-and-fire neurons)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden: int = Field(64, ge=4, le=1024, description="Hidden neurons")
    steps: int = Field(16, ge=4, le=128, description="Time steps a prompt is presented for")
    encoding: Literal["latency", "rate"] = Field("latency", description="How embeddings become spikes")
    threshold: float = Field(0.1, ge=0.0, lt=1.0, description="Latency coding: intensities below it never fire")
    beta: float = Field(0.9, gt=0.0, lt=1.0, description="Membrane decay per step")
    activity_weight: float = Field(0.1, ge=0.0, le=10.0, description="Penalty on the hidden spike rate")
    min_margin: int = Field(1, ge=0, description="Below this spike-count margin the router answers with `fallback`")
    fallback: Label | None = Field(None, description="The target of an uncertain decision (none: the winner)")


class RouteTarget(BaseModel):
    """Who answers a label: a deployment, grounded in a RAG collection's passages when `collection` is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment: str = Field(pattern=DEPLOYMENT_NAME, description="The deployment that answers")
    collection: str | None = Field(None, pattern=COLLECTION_NAME_PATTERN, description="A RAG collection to answer from")


class RouteDecided(Message):
    """The gateway routed a request: the prompt's hash (never its text), the winner and how sure the network was."""

    type: ClassVar[str] = "modelops.router.decided.v1"
    subject_field: ClassVar[str] = "router"

    decision_id: str
    router: str = Field(description="The router deployment's name")
    router_artifact: str
    prompt_sha256: str = Field(pattern=SHA256_PATTERN)
    label: str
    target: RouteTarget
    margin: int = Field(ge=0)
    fallback: bool
    requested_by: str


class RouteCorrected(Message):
    """A user said which target should have answered a decision: a row for the router's next training."""

    type: ClassVar[str] = "modelops.router.corrected.v1"
    subject_field: ClassVar[str] = "router"

    decision_id: str
    router: str
    prompt: str
    label: str
    corrected_by: str


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt


class RouteDecisionView(BaseModel):
    """What the router's network decided for one prompt (the inference service's answer to the gateway)."""

    label: str = Field(description="The chosen target: the winner, or the fallback when the margin was too low")
    winner: str = Field(description="The target whose output neuron fired most")
    margin: int = Field(description="The winner's spike count less the runner-up's")
    fallback: bool
    counts: dict[str, int] = Field(description="Output spikes per target")
    synaptic_ops: int = Field(description="Accumulates a spike-driven chip would perform for this decision")
    router_artifact: str


class CorrectionRequest(BaseModel):
    """The prompt as sent (its hash must match the decision's) and the target that should have answered it."""

    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    target: Label


class RouterStats(BaseModel):
    router: str
    decisions: int
    by_target: dict[str, int] = Field(description="Decisions per chosen target")
    fallbacks: int
    mean_margin: float | None
    corrected: int = Field(description="Decisions users marked wrong")


class FeedbackRow(BaseModel):
    """A training row from a correction: the routing dataset's schema (`prompt`, `target`)."""

    prompt: str
    target: str

"""Evaluation commands (gateway → evaluator) and events (evaluator → gateway): a model, with an adapter or not, or a
deployment, answers every item of a suite (a dataset version); each item is scored by the named metrics, and the
scores become a signed eval_report."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, Field, model_validator

from .messages import Message

METRIC_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class MetricSpec(BaseModel):
    """One metric by name (a built-in or a `modelops.eval_metrics` entry point) and its parameters, e.g.
    `{"name": "regex_match", "params": {"pattern": "^\\\\d+$"}}`."""

    name: str = Field(pattern=METRIC_NAME_PATTERN)
    params: dict[str, Any] = Field({}, description="What the metric needs besides the item, e.g. a pattern or schema")


def _each_once(metrics: list[MetricSpec]) -> list[MetricSpec]:
    names = [metric.name for metric in metrics]
    if len(set(names)) != len(names):
        raise ValueError("a metric is named twice")
    return metrics


MetricSpecs = Annotated[list[MetricSpec], Field(min_length=1, max_length=16), AfterValidator(_each_once)]


class StartEvaluation(Message):
    """Command: score a model on `suite` with `metrics`. The model (base, merged or quantized), with an adapter or
    not, runs in the evaluator; or, when `deployment` is set, that deployment's OpenAI API answers (`served_model` is
    the name it answers to), and `model` and `adapter` name the artifacts it serves, which the report links to."""

    type: ClassVar[str] = "modelops.evaluation.start.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    submitted_by: str
    model: str = Field(description="Artifact id of the model")
    adapter: str | None = Field(None, description="Artifact id of an adapter of that model")
    deployment: str | None = Field(None, description="Evaluate through this deployment instead of loading the model")
    served_model: str | None = Field(None, description="The OpenAI `model` the deployment answers to")
    suite: str = Field(description="The dataset's name")
    suite_version: int = Field(ge=0, description="Its Delta version: a suite is always one exact version")
    metrics: MetricSpecs
    seed: int = Field(0, ge=0, description="Picks the items when max_items samples the suite; seeds decoding")
    max_items: int | None = Field(None, ge=1, le=100_000, description="Score a seeded sample of this many items")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Longest answer generated per item")
    name: str | None = Field(None, description="The report's name; default <model name>[-<adapter>]-on-<suite>")

    @model_validator(mode="after")
    def _served_with_deployment(self) -> StartEvaluation:
        if (self.deployment is None) != (self.served_model is None):
            raise ValueError("deployment and served_model go together")
        return self


class CancelEvaluation(Message):
    """Command: stop a queued or running evaluation job."""

    type: ClassVar[str] = "modelops.evaluation.cancel.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    requested_by: str
    reason: str = ""


class EvaluationStarted(Message):
    type: ClassVar[str] = "modelops.evaluation.started.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    worker: str
    items: int = Field(ge=0, description="Items to score")


class EvaluationProgressed(Message):
    type: ClassVar[str] = "modelops.evaluation.progressed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    done: int = Field(ge=0, description="Items answered so far")
    total: int = Field(ge=0)


class EvaluationCompleted(Message):
    type: ClassVar[str] = "modelops.evaluation.completed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    report_id: str = Field(description="The eval_report artifact, submitted to the registry")
    metrics: dict[str, float] = Field(description="The aggregates, as signed into the report")
    items: int = Field(ge=0)
    duration_seconds: float = Field(ge=0)


class EvaluationFailed(Message):
    type: ClassVar[str] = "modelops.evaluation.failed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    reason: str
    error_type: str = "error"


class EvaluationCancelled(Message):
    type: ClassVar[str] = "modelops.evaluation.cancelled.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    reason: str = ""

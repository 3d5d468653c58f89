"""The console's pure parts: a job's status from its events, the index row of a Kafka record, and a deployment's
serving figures from a Prometheus exposition (quantiles as histogram_quantile estimates them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord
from modelops_contracts import (
    JobStatus,
    QuantizationCompleted,
    StartTraining,
    TrainingCompleted,
    TrainingProgressed,
    TrainingStarted,
)
from modelops_gateway.console.domain import JOB_KINDS, job_status, service_of, trace_id_of
from modelops_gateway.console.recorder import row_of
from modelops_gateway.console.serving_metrics import deployment_figures, quantile
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

TRAINING = JOB_KINDS[0]


def test_a_jobs_status_follows_its_events_and_an_outcome_sticks() -> None:
    assert job_status(TRAINING, [StartTraining.type]) == JobStatus.QUEUED
    assert job_status(TRAINING, [StartTraining.type, TrainingStarted.type]) == JobStatus.RUNNING
    done = [StartTraining.type, TrainingStarted.type, TrainingCompleted.type]
    assert job_status(TRAINING, done) == JobStatus.COMPLETED
    assert job_status(TRAINING, [*done, TrainingProgressed.type]) == JobStatus.COMPLETED  # a late progress report
    assert job_status(TRAINING, [StartTraining.type, QuantizationCompleted.type]) == JobStatus.QUEUED  # another kind's


def test_every_kind_of_job_is_known_by_its_start_command() -> None:
    assert [kind.name for kind in JOB_KINDS] == ["training", "quantization", "evaluation", "indexing"]
    for kind in JOB_KINDS:
        assert kind.status_after(kind.start.type) == JobStatus.QUEUED
        assert kind.status_after(kind.completed.type) == JobStatus.COMPLETED
        assert kind.status_after(kind.failed.type) == JobStatus.FAILED
        assert kind.status_after(kind.cancelled.type) == JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("traceparent", "trace_id"),
    [
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # the invalid all-zero id
        ("garbage", None),
        (None, None),
    ],
)
def test_the_trace_id_is_read_from_a_w3c_traceparent(traceparent: str | None, trace_id: str | None) -> None:
    assert trace_id_of(traceparent) == trace_id


def test_a_record_is_indexed_by_its_place_and_envelope_and_one_without_headers_is_still_indexed() -> None:
    headers = [
        ("ce_id", b"m-1"),
        ("ce_type", b"modelops.training.start.v1"),
        ("ce_source", b"/services/gateway"),
        ("ce_subject", b"job-1"),
        ("ce_time", b"2026-12-07T08:00:00.5Z"),
        ("correlation_id", b"job-1"),
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ]
    row = row_of(_record(headers))
    assert row == (
        "training.commands.v1",
        2,
        41,
        "job-1",
        "m-1",
        "modelops.training.start.v1",
        "/services/gateway",
        "job-1",
        "job-1",
        None,
        "4bf92f3577b34da6a3ce929d0e0e4736",
        datetime(2026, 12, 7, 8, 0, 0, 500000, tzinfo=UTC),
    )
    bare = row_of(_record([]))
    assert bare[4:11] == (None,) * 7
    assert bare[11] == datetime.fromtimestamp(1_700_000_000, UTC)  # the broker's timestamp
    assert service_of("/services/gateway") == "gateway"


def test_quantiles_interpolate_within_their_bucket_like_prometheus() -> None:
    buckets = [(0.1, 2.0), (0.5, 6.0), (1.0, 10.0), (float("inf"), 10.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (5 - 2) / (6 - 2))
    assert quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * (9.5 - 6) / 4)
    assert quantile(0.99, [(1.0, 1.0), (float("inf"), 10.0)]) == 1.0  # in +Inf: the highest finite bound
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_a_deployments_figures_are_read_per_model_and_other_deployments_left_out() -> None:
    registry = CollectorRegistry()
    requests = Counter("modelops_inference_requests", "", ("deployment", "model", "outcome"), registry=registry)
    tokens = Counter("modelops_inference_completion_tokens", "", ("deployment", "model"), registry=registry)
    ttft = Histogram(
        "modelops_inference_time_to_first_token_seconds",
        "",
        ("deployment", "model"),
        buckets=(0.1, 0.5, 1.0),
        registry=registry,
    )
    requests.labels("chat", "chat", "ok").inc(3)
    requests.labels("chat", "ft:tiny:echo:job-1", "ok").inc()
    requests.labels("other", "other", "ok").inc(7)
    tokens.labels("chat", "chat").inc(12)
    for seconds in (0.05, 0.2, 0.3):
        ttft.labels("chat", "chat").observe(seconds)

    figures = deployment_figures(generate_latest(registry).decode(), "chat")

    assert [f.model for f in figures] == ["chat", "ft:tiny:echo:job-1"]
    chat = figures[0]
    assert chat.requests == {"ok": 3}
    assert chat.completion_tokens == 12
    assert chat.time_to_first_token.count == 3
    assert chat.time_to_first_token.mean_s == pytest.approx(0.55 / 3)
    assert chat.time_to_first_token.p50_s == pytest.approx(0.1 + 0.4 * (1.5 - 1) / 2)
    assert figures[1].requests == {"ok": 1}
    assert figures[1].time_to_first_token.count == 0


def _record(headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="training.commands.v1",
        partition=2,
        offset=41,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=b"job-1",
        value=b"{}",
        checksum=None,
        serialized_key_size=5,
        serialized_value_size=2,
        headers=headers,
    )

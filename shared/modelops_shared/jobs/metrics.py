"""Prometheus metrics of jobs, by kind (training, quantization, evaluation, rag): how long a start command waited
for a worker, how many run now, and how long each took, by outcome. Waiting commands are the consumer lag of the
commands topic (`modelops_consumer_lag`, from the broker) — they are not counted twice here."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Jobs run from seconds (a tiny model's test job) to days.
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 48 * 3600)

JOB_QUEUE_SECONDS = Histogram(
    "modelops_job_queue_seconds",
    "From the start command's publication to a worker starting it (first attempts: a resumed job did not wait)",
    ("kind",),
    buckets=_DURATION_BUCKETS,
)
JOBS_RUNNING = Gauge("modelops_jobs_running", "Jobs this worker runs now", ("kind",))
JOB_DURATION_SECONDS = Histogram(
    "modelops_job_duration_seconds",
    "From a worker starting a job to its outcome being recorded",
    ("kind", "outcome"),
    buckets=_DURATION_BUCKETS,
)
JOBS_FINISHED = Counter("modelops_jobs_finished_total", "Jobs ended, by outcome", ("kind", "outcome"))

"""Experiment tracking: when MLFLOW_TRACKING_URI is set, a job's parameters and metrics also go to MLflow.

MLflow is an optional dependency (`modelops-trainer[mlflow]`, the skinny client). A resumed job continues the run
tagged with its job id rather than starting a second one. Tracking never fails a job: MLflow being unreachable is
logged and training goes on.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from modelops_contracts import JobStatus

log = logging.getLogger(__name__)

EXPERIMENT = "modelops"
JOB_TAG = "modelops.job_id"
RUN_STATUS = {JobStatus.COMPLETED: "FINISHED", JobStatus.FAILED: "FAILED", JobStatus.CANCELLED: "KILLED"}


class Tracker:
    def __init__(self, client: Any, run_id: str) -> None:
        self._client = client
        self.run_id = run_id

    @classmethod
    def for_job(cls, job_id: str, params: dict[str, Any]) -> Tracker | None:
        """The job's MLflow run, or None when tracking is not configured (or unavailable)."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return None
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(uri)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
            runs = client.search_runs([experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{job_id}'", max_results=1)
            if runs:
                return cls(client, runs[0].info.run_id)
            run = client.create_run(experiment_id, run_name=job_id, tags={JOB_TAG: job_id})
            client.log_batch(run.info.run_id, params=_params(params))
            return cls(client, run.info.run_id)
        except Exception:
            log.exception("MLflow tracking is configured but unavailable; training without it")
            return None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        try:
            timestamp = int(time.time() * 1000)
            self._client.log_batch(
                self.run_id, metrics=[Metric(key, value, timestamp, step) for key, value in metrics.items()]
            )
        except Exception:
            log.exception("could not log metrics to MLflow")

    def finish(self, status: JobStatus) -> None:
        """End the run with the MLflow status of the job's terminal `status`."""
        try:
            self._client.set_terminated(self.run_id, RUN_STATUS[status])
        except Exception:
            log.exception("could not close the MLflow run")


def _params(params: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(key, str(value)[:6000]) for key, value in sorted(params.items())]

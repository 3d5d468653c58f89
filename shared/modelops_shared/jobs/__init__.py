"""Long-running jobs fed by Kafka (training, quantization, …): one job at a time per worker, cancels read within a
second, a ledger that makes redelivery and a dead worker safe. A service supplies the commands and how to run one."""

from .commands import JobCommands, Outcome, StopSignal, Transient
from .consumer import JobConsumer
from .failures import InputNotFound, InputUnusable, JobFailure, fetch_input, outcome_of_error, resolve_input
from .progress import publish_progress

__all__ = [
    "InputNotFound",
    "InputUnusable",
    "JobCommands",
    "JobConsumer",
    "JobFailure",
    "Outcome",
    "StopSignal",
    "Transient",
    "fetch_input",
    "outcome_of_error",
    "publish_progress",
    "resolve_input",
]

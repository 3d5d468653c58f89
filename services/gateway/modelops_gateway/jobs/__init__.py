"""Training jobs at the gateway: submission and cancellation (commands through the outbox), the gateway's own record
of each job and its numbered events (projected from training.events.v1), and live event streams across replicas."""

from .feed import JobFeed
from .projection import project
from .references import Fields, RegistryLookups
from .store import TERMINAL, Job, JobEvent, events_before, get_job, list_jobs
from .submission import SUFFIX_PATTERN, TRAINING, TrainingJobRequest, cancel, submit

__all__ = [
    "SUFFIX_PATTERN",
    "TERMINAL",
    "TRAINING",
    "Fields",
    "Job",
    "JobEvent",
    "JobFeed",
    "RegistryLookups",
    "TrainingJobRequest",
    "cancel",
    "events_before",
    "get_job",
    "list_jobs",
    "project",
    "submit",
]

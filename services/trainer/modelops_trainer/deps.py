"""What a route reaches: this worker's name and its job consumer, held in app state once the lifespan started them
(`TrainerDep`), or a 503 problem before that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import state_dependency


@dataclass
class Trainer:
    worker: str
    consumer: JobConsumer


get_trainer = state_dependency("trainer", Trainer, detail="the trainer is starting")
TrainerDep = Annotated[Trainer, Depends(get_trainer)]

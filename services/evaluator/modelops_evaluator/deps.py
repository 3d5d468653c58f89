"""What a route reaches: this worker's name and its job consumer, held in app state once the lifespan started them
(`EvaluatorDep`), or a 503 problem before that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import state_dependency


@dataclass
class Evaluator:
    worker: str
    consumer: JobConsumer


get_evaluator = state_dependency("evaluator", Evaluator, detail="the evaluator is starting")
EvaluatorDep = Annotated[Evaluator, Depends(get_evaluator)]

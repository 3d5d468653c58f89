"""What a route reaches: this worker's name and its job consumer, held in app state once the lifespan started them
(`QuantizerDep`), or a 503 problem before that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import state_dependency


@dataclass
class Quantizer:
    worker: str
    consumer: JobConsumer


get_quantizer = state_dependency("quantizer", Quantizer, detail="the quantizer is starting")
QuantizerDep = Annotated[Quantizer, Depends(get_quantizer)]

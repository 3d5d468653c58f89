"""What a route reaches: the settings and the deployments (engines, routes by model name), held in app state once
the lifespan started them (`InferenceDep`), or a 503 problem before that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.service import state_dependency

from .deployments import Deployments
from .settings import InferenceSettings


@dataclass
class Inference:
    settings: InferenceSettings
    deployments: Deployments


get_inference = state_dependency("inference", Inference, detail="the inference service is starting")
InferenceDep = Annotated[Inference, Depends(get_inference)]

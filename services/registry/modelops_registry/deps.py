"""What a route reaches: the registry's connections, keys and policy, held in app state once the lifespan started
them (`RegistryDep`), or a 503 problem before that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from modelops_shared.service import Runtime, state_dependency
from modelops_shared.signing import KeyRing

from .domain import Policy


@dataclass
class Registry:
    runtime: Runtime
    keys: KeyRing
    policy: Policy


get_registry = state_dependency("registry", Registry, detail="the registry is starting")
RegistryDep = Annotated[Registry, Depends(get_registry)]

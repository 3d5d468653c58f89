"""What a route reaches: the rag service's runtime, artifact client, retriever and inference client, held in app
state once the lifespan started them (`RagDep`), or a 503 problem before that; and the acting user, whom only the
gateway's service token can name (`ActingUser`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.jobs import JobConsumer
from modelops_shared.problems import Problem
from modelops_shared.service import Runtime, ServiceCallerDep, state_dependency

from .retrieval import Retriever
from .settings import RagSettings

USER_FACING = "gateway"
ROLES = ("viewer", "developer", "approver", "admin")


@dataclass
class Rag:
    settings: RagSettings
    runtime: Runtime
    artifacts: ArtifactClient
    retriever: Retriever
    inference: httpx.AsyncClient
    consumer: JobConsumer
    worker: str


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def acting_user(caller: ServiceCallerDep) -> User:
    """The user the gateway vouches for in its token; a call from anyone else acts for nobody."""
    if caller.service != USER_FACING or caller.role not in ROLES:
        raise Problem(403, "acting-user-required", f"RAG routes act for a user, vouched for by the {USER_FACING}")
    return User(caller.subject, caller.role)


def writer(user: Annotated[User, Depends(acting_user)]) -> User:
    if user.role == "viewer":
        raise Problem(403, "forbidden", "creating and changing collections needs the developer role")
    return user


get_rag = state_dependency("rag", Rag, detail="the rag service is starting")
RagDep = Annotated[Rag, Depends(get_rag)]
Reader = Annotated[User, Depends(acting_user)]
Writer = Annotated[User, Depends(writer)]

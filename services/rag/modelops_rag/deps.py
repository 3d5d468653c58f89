"""What a route reaches: the rag service's runtime, artifact client, retriever and inference client, held in app
state once the lifespan started them (`RagDep`), or a 503 problem before that. Who acts is the gateway's to say
(`modelops_shared.service.ActingUserDep`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import Runtime, state_dependency

from .retrieval import Retriever
from .settings import RagSettings


@dataclass
class Rag:
    settings: RagSettings
    runtime: Runtime
    artifacts: ArtifactClient
    retriever: Retriever
    inference: httpx.AsyncClient
    consumer: JobConsumer


get_rag = state_dependency("rag", Rag, detail="the rag service is starting")
RagDep = Annotated[Rag, Depends(get_rag)]

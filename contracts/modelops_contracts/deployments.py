"""Deployment commands (gateway → inference) and events (inference → registry, gateway)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .messages import Message

DEPLOYMENT_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# Every inference replica obeys every command and answers for itself: N replicas, N answers per command.
REPLICA = "The inference replica that answers (its host name by default); empty from producers before replicas"


class Deploy(Message):
    """Command: serve `base_model` with these adapters under `name`; empty `adapters` serves the base alone."""

    type: ClassVar[str] = "modelops.deployment.deploy.v1"
    subject_field: ClassVar[str] = "name"

    name: str = Field(pattern=DEPLOYMENT_NAME)
    base_model: str
    adapters: list[str] = []
    requested_by: str


class Undeploy(Message):
    type: ClassVar[str] = "modelops.deployment.undeploy.v1"
    subject_field: ClassVar[str] = "name"

    name: str = Field(pattern=DEPLOYMENT_NAME)
    requested_by: str


class DeploymentReady(Message):
    type: ClassVar[str] = "modelops.deployment.ready.v1"
    subject_field: ClassVar[str] = "name"

    name: str
    base_model: str
    adapters: list[str] = []
    backend: str
    replica: str = Field("", description=REPLICA)


class DeploymentFailed(Message):
    type: ClassVar[str] = "modelops.deployment.failed.v1"
    subject_field: ClassVar[str] = "name"

    name: str
    reason: str
    replica: str = Field("", description=REPLICA)


class DeploymentRemoved(Message):
    type: ClassVar[str] = "modelops.deployment.removed.v1"
    subject_field: ClassVar[str] = "name"

    name: str
    reason: str = ""
    replica: str = Field("", description=REPLICA)

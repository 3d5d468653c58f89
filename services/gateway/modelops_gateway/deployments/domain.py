"""The refusals of the deployments feature: a name neither this gateway nor the inference service serves, and what
a deployment may not serve."""

from __future__ import annotations

from typing import Any

from modelops_shared.errors import Conflict, Invalid, NotFound


class DeploymentNotFound(NotFound):
    slug = "deployment-not-found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no deployment {name}")


class UnusableDeployReference(Invalid):
    """A registered artifact a deployment cannot serve (an adapter of another base); `slug=` says which."""


class ArtifactNotDeployable(Conflict):
    """An artifact in a stage the registry's policy does not deploy (dev, archived, revoked by default)."""

    slug = "artifact-not-deployable"

    def __init__(self, record: dict[str, Any], deployable_stages: list[str], param: str) -> None:
        super().__init__(
            f"{param}: {record['id']} is in {record['stage']}, and the policy deploys {', '.join(deployable_stages)}"
            " only: promote it first",
            artifact_id=record["id"],
            stage=record["stage"],
            deployable_stages=deployable_stages,
            param=param,
        )

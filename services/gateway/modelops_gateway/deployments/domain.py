"""The refusal of the deployments feature: a name neither this gateway nor the inference service serves."""

from __future__ import annotations

from modelops_shared.errors import NotFound


class DeploymentNotFound(NotFound):
    slug = "deployment-not-found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no deployment {name}")

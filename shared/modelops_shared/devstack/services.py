"""Service discovery (services/<name>/ holding a pyproject.toml and a modelops_<name> package) and each service as a
component: `python -m modelops_<name>` on the port its settings give it, ready once GET /readyz answers 200."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from ..settings import Settings
from .components import Component, StackPaths, stack_env
from .processes import StackError, spawn

# A service bound to every interface is still reached on loopback.
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


def discover(root: Path) -> list[str]:
    """Names of the service packages under root, sorted; none when root does not exist."""
    if not root.is_dir():
        return []
    return [
        entry.name
        for entry in sorted(root.iterdir())
        if (entry / "pyproject.toml").is_file() and (entry / f"modelops_{entry.name}").is_dir()
    ]


def _port(settings: Settings, name: str) -> int:
    try:
        return settings.port_of(name)
    except AttributeError:
        raise StackError(f"service {name!r} has no port: add `{name}_port` to modelops_shared.settings") from None


def _registry_url(settings: Settings, host: str) -> str:
    """The registry this stack runs, wherever MODELOPS_REGISTRY_PORT moved it; MODELOPS_REGISTRY_URL, if set, wins."""
    if "registry_url" in settings.model_fields_set:
        return settings.registry_url
    return f"http://{host}:{settings.registry_port}"


def service(settings: Settings, name: str, root: Path) -> Component:
    """The service `name` found under root, with the stack's addresses in its environment."""
    paths = StackPaths.of(settings)
    host = "127.0.0.1" if settings.http_host in _WILDCARD_HOSTS else settings.http_host
    port = _port(settings, name)
    url = f"http://{host}:{port}"
    setting = f"MODELOPS_{name.upper()}_PORT"
    env = {
        **os.environ,
        **stack_env(settings),
        "MODELOPS_SERVICE_NAME": name,
        setting: str(port),
        "MODELOPS_REGISTRY_URL": _registry_url(settings, host),
        # The gateway proxies OpenAI's routes to the inference service this stack runs (unless set otherwise).
        "MODELOPS_INFERENCE_URL": os.environ.get("MODELOPS_INFERENCE_URL")
        or f"http://{host}:{settings.inference_port}",
        "MODELOPS_RAG_URL": os.environ.get("MODELOPS_RAG_URL") or f"http://{host}:{settings.rag_port}",
        "MODELOPS_MARKETPLACE_URL": os.environ.get("MODELOPS_MARKETPLACE_URL")
        or f"http://{host}:{settings.marketplace_port}",
        # One machine holds every model: a base model unused for 15 minutes is unloaded, and loaded again on demand.
        "MODELOPS_INFERENCE_IDLE_UNLOAD_S": os.environ.get("MODELOPS_INFERENCE_IDLE_UNLOAD_S", "900"),
        # The service's own directory first, so it runs from its checkout even before it is pip-installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root.resolve() / name), os.environ.get("PYTHONPATH")])),
    }

    def launch() -> int:
        return spawn([sys.executable, "-m", f"modelops_{name}"], paths.log(name), env)

    async def probe() -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/readyz")
        if response.status_code != 200:
            raise StackError(f"/readyz answered {response.status_code}: {response.text[:200]}")

    return Component(name, host, port, url, setting, paths.pid_file(name), paths.log(name), launch, probe)

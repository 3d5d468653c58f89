"""Bring the embedded stack up, report on it and take it down: what `modelops-stack` and the test fixtures call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..bus.access import KafkaAccess
from ..bus.topics import ensure_topics
from ..service_tokens import keygen
from ..settings import Settings
from .components import Component, StackPaths, infrastructure, object_dir, wait_ready
from .drain import Backlog, drain
from .processes import PidRecord, StackError, is_alive, port_open, read_pid, running_pid, stop_group, write_pid
from .services import discover, service

INFRA_TIMEOUT_S = 30.0
SERVICE_TIMEOUT_S = 120.0  # a service may import torch and build its pools before /readyz says yes


@dataclass(frozen=True)
class Row:
    """One line of `modelops-stack status`."""

    name: str
    state: str
    pid: int | None
    address: str


async def start_infrastructure(settings: Settings, ready_within_s: float = INFRA_TIMEOUT_S) -> list[Component]:
    """Start whatever of tansu, PostgreSQL and Redis is not running, wait until each answers, create the catalog
    topics, the object-store directory and the services' keys. Idempotent: live components are kept, dead ones
    restarted, existing keys kept."""
    keygen(settings.service_peers_path)
    directory = object_dir(settings)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    components = infrastructure(settings)
    await _ensure_running(components, ready_within_s)
    await ensure_topics(KafkaAccess.of(settings))
    return components


async def start_services(
    settings: Settings, services_root: Path, ready_within_s: float = SERVICE_TIMEOUT_S
) -> list[Component]:
    """Start every service package found under services_root (none is fine) and wait until each /readyz says 200."""
    components = [service(settings, name, services_root) for name in discover(services_root)]
    await _ensure_running(components, ready_within_s)
    return components


async def _ensure_running(components: list[Component], ready_within_s: float) -> None:
    """Launch the components whose process is not alive, one after the other, then wait for all to be ready."""
    running: dict[str, PidRecord] = {}
    for component in components:
        record = read_pid(component.pid_file)
        if record is not None and is_alive(record):
            running[component.name] = record
    # Checked before launching anything, so a port conflict leaves nothing half-started.
    strangers = [c for c in components if c.name not in running and port_open(c.host, c.port)]
    if strangers:
        raise StackError(
            "\n".join(
                f"{c.name}: {c.host}:{c.port} is taken by a process this stack did not start; "
                f"stop it or move {c.name} elsewhere with {c.setting}"
                for c in strangers
            )
        )
    for component in components:
        if component.name not in running:
            running[component.name] = await asyncio.to_thread(_launch, component)
    waits = [asyncio.ensure_future(wait_ready(c, running[c.name], ready_within_s)) for c in components]
    try:
        await asyncio.gather(*waits)
    finally:
        for wait in waits:
            wait.cancel()  # the first failure ends `up`; the other waits have nothing left to report


def _launch(component: Component) -> PidRecord:
    # Run in a worker thread, which writes the pid file even when the awaiting task is cancelled (Ctrl-C), so that
    # `down` can still stop what was started.
    return write_pid(component.pid_file, component.launch())


async def quiesce(settings: Settings, timeout_s: float) -> Backlog | None:
    """Before `stop_all`: wait until the running services have published and consumed what is in flight (see
    `drain`); returns what was left when `timeout_s` ran out, or None when nothing runs that could hold any."""
    infra = {component.name: component for component in infrastructure(settings)}
    if any(running_pid(infra[name].pid_file) is None for name in ("kafka", "postgres")):
        return None
    services = [f.stem for f in _service_pid_files(settings, set(infra)) if running_pid(f) is not None]
    # Each service's schema bears its name (the default of MODELOPS_<NAME>_SCHEMA).
    return await drain(settings, services, timeout_s) if services else None


def stop_all(settings: Settings) -> list[str]:
    """Stop every process this state dir records, services before the infrastructure they use; returns the names of
    those that were running. Harmless when nothing runs."""
    infra = infrastructure(settings)
    stops: list[tuple[Path, Callable[[int], None]]] = [
        (pid_file, stop_group) for pid_file in _service_pid_files(settings, {component.name for component in infra})
    ]
    stops += [(component.pid_file, component.halt) for component in reversed(infra)]
    stopped = []
    for pid_file, halt in stops:
        pid = running_pid(pid_file)
        if pid is not None:
            halt(pid)
            stopped.append(pid_file.stem)
        pid_file.unlink(missing_ok=True)
    return stopped


def _service_pid_files(settings: Settings, infra_names: set[str]) -> list[Path]:
    """The pid files of the services this state dir records, whether or not they still run."""
    return [f for f in sorted(StackPaths.of(settings).run.glob("*.pid")) if f.stem not in infra_names]


def status(settings: Settings, services_root: Path) -> list[Row]:
    """What runs: each component with its pid and address, the object store, then the services."""
    directory = object_dir(settings)
    objects = "remote" if directory is None else "present" if directory.is_dir() else "absent"
    return [
        *(_row(component) for component in infrastructure(settings)),
        Row("objects", objects, None, settings.store_url),
        *(_row(service(settings, name, services_root)) for name in discover(services_root)),
    ]


def _row(component: Component) -> Row:
    pid = running_pid(component.pid_file)
    # A live process whose port is still shut is on its way up (or hung: its log will say).
    state = "stopped" if pid is None else "running" if port_open(component.host, component.port) else "starting"
    return Row(component.name, state, pid, component.url)

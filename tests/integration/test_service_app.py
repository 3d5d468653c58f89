"""The service app factory against the real embedded stack, composed the way a service composes it: a FastAPI app
from `create_service_app` whose lifespan enters `Runtime.started` with a consumer on the ping topic.

Operational routes (/healthz, /readyz, /metrics), problem details, request ids in responses and logs, and the
outbox path from a handler's `ctx.emit` through the runtime's relay back to the consumer."""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from helpers import service_auth
from modelops_contracts import Envelope, Message, Ping
from modelops_contracts.catalog import DIAGNOSTICS_PINGS
from modelops_shared import service as service_module
from modelops_shared.bus import MessageContext
from modelops_shared.problems import PROBLEM_BASE, PROBLEM_JSON, Problem
from modelops_shared.service import REQUEST_ID, Runtime, Subscription, create_service_app
from modelops_shared.settings import Settings
from modelops_shared.telemetry import configure_logging
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, Field

SERVICE = "service-app-test"
WAIT_S = 30
SECRET = "secret-ish text"

log = logging.getLogger("service_app_test")


class Thing(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=0)


def _add_test_routes(app: FastAPI) -> None:
    """What a service adds: routes that raise its own problems, validate bodies, fail unexpectedly and log."""

    @app.get("/conflict")
    async def conflict() -> None:
        raise Problem(409, "conflict-thing", "the thing already exists", thing="t-1")

    @app.post("/things", status_code=201)
    async def create_thing(thing: Thing) -> Thing:
        return thing

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET)

    @app.get("/log")
    async def log_something() -> dict[str, str]:
        with trace.get_tracer(__name__).start_as_current_span("handle") as span:
            log.info("handled a request")
            return {"trace_id": format(span.get_span_context().trace_id, "032x")}


@dataclass
class Seen:
    """What this module's consumer handled, by ping id (other tests' pings on the shared topic are ignored)."""

    prefix: str
    messages: dict[str, tuple[Ping, Envelope]] = field(default_factory=dict)

    def ping(self, payload: str = "") -> Ping:
        return Ping(ping_id=f"{self.prefix}-{uuid.uuid4().hex[:12]}", sent_at=datetime.now(UTC), payload=payload)

    async def handle(self, message: Message, ctx: MessageContext) -> None:
        if not isinstance(message, Ping) or not message.ping_id.startswith(self.prefix):
            return
        self.messages[message.ping_id] = (message, ctx.envelope)
        if message.payload == "emit":
            await ctx.emit(Ping(ping_id=f"{message.ping_id}-child", sent_at=datetime.now(UTC), payload="child"))

    async def wait_for(self, ping_id: str) -> tuple[Ping, Envelope]:
        async with asyncio.timeout(WAIT_S):
            while ping_id not in self.messages:
                await asyncio.sleep(0.05)
        return self.messages[ping_id]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _service_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"service_name": SERVICE})


def _build_app(settings: Settings, *, schema: str, subscriptions: tuple[Subscription, ...] = ()) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime.started(settings, schema=schema, subscriptions=subscriptions) as runtime:
            app.state.runtime = runtime
            app.state.readiness_checks = runtime.readiness_checks()
            yield

    app = create_service_app(settings, title="Service app test", lifespan=lifespan)
    _add_test_routes(app)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    # raise_app_exceptions stays on: an exception escaping the app would also escape uvicorn's error handling.
    # An internal service: every call but the probes carries a service token, as another service's would.
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://service.test", auth=service_auth(SERVICE))


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    seen: Seen
    group: str

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime


@pytest.fixture(scope="module")
async def service(embedded_stack: Settings) -> AsyncIterator[Service]:
    """One started service for the module: its runtime consumes pings with a group of its own."""
    seen = Seen(prefix=f"svc-{uuid.uuid4().hex[:8]}")
    group = _unique("svc_group")
    subscription = Subscription(DIAGNOSTICS_PINGS, group, seen.handle)
    app = _build_app(_service_settings(embedded_stack), schema=_unique("svc"), subscriptions=(subscription,))
    async with app.router.lifespan_context(app), _client(app) as client:
        yield Service(app=app, client=client, seen=seen, group=group)


def _assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"]
    assert body["instance"] == response.request.url.path
    return body


# --- /healthz and /readyz ------------------------------------------------------------------------------------------


async def test_not_started_service_is_alive_but_not_ready(embedded_stack):
    app = _build_app(_service_settings(embedded_stack), schema=_unique("svc"))
    async with _client(app) as client:
        healthz = await client.get("/healthz")
        assert healthz.status_code == 200
        assert healthz.json() == {"status": "ok", "service": SERVICE}

        body = _assert_problem(await client.get("/readyz"), 503, "not-ready")
        assert body["checks"] == {}


async def test_started_service_is_ready_with_every_dependency_ok(service):
    assert (await service.client.get("/healthz")).status_code == 200
    response = await service.client.get("/readyz")
    assert response.status_code == 200, response.text
    checks = {"broker": "ok", "consumers": "ok", "database": "ok", "store": "ok"}
    assert response.json() == {"status": "ready", "checks": checks}


async def test_a_consume_loop_that_ended_turns_readiness_red(embedded_stack):
    seen = Seen(prefix=f"dead-{uuid.uuid4().hex[:8]}")
    subscription = Subscription(DIAGNOSTICS_PINGS, _unique("dead_group"), seen.handle)
    app = _build_app(_service_settings(embedded_stack), schema=_unique("svc"), subscriptions=(subscription,))
    async with app.router.lifespan_context(app), _client(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        for subscriber in app.state.runtime.bus.broker.subscribers:
            for task in subscriber.tasks:
                task.cancel()  # as a loop that crashed would end
        async with asyncio.timeout(10):
            while (answer := await client.get("/readyz")).status_code == 200:
                await asyncio.sleep(0.05)
        body = _assert_problem(answer, 503, "not-ready")
        assert [name for name, state in body["checks"].items() if state != "ok"] == ["consumers"]


async def test_readyz_names_the_dependency_that_fails_or_hangs(service, monkeypatch):
    async def broken() -> bool:
        raise ConnectionError("no route to host")

    async def refused() -> bool:
        return False

    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    # A shorter timeout only while the hanging check is tried; long enough for the real checks of a busy machine.
    with monkeypatch.context() as patched:
        patched.setattr(service_module, "READINESS_TIMEOUT_S", 1.0)
        try:
            for name, check in (("database", broken), ("store", refused), ("broker", hangs)):
                checks: dict[str, Callable[[], Awaitable[bool]]] = service.runtime.readiness_checks()
                checks[name] = check
                service.app.state.readiness_checks = checks
                body = _assert_problem(await service.client.get("/readyz"), 503, "not-ready")
                assert body["checks"][name] == "unavailable"
                assert [n for n, state in body["checks"].items() if state != "ok"] == [name]
        finally:
            service.app.state.readiness_checks = service.runtime.readiness_checks()
    assert (await service.client.get("/readyz")).status_code == 200


async def test_stopped_runtime_is_not_ready(embedded_stack):
    """After shutdown the runtime's pool is closed and its broker stopped: its own checks say so."""
    app = _build_app(_service_settings(embedded_stack), schema=_unique("svc"))
    async with _client(app) as client:
        async with app.router.lifespan_context(app):
            assert (await client.get("/readyz")).status_code == 200
        body = _assert_problem(await client.get("/readyz"), 503, "not-ready")
        assert body["checks"]["database"] == "unavailable"
        assert body["checks"]["broker"] == "unavailable"


# --- /metrics ------------------------------------------------------------------------------------------------------


def _samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def _total(text: str, name: str, **labels: str) -> float:
    return sum(_samples(text, name, **labels))


async def test_metrics_expose_bus_counters_and_consumer_lag(service):
    topic = DIAGNOSTICS_PINGS.name
    published = {"app_name": SERVICE, "destination": topic, "status": "success"}
    received = {"app_name": SERVICE, "handler": topic}
    before = (await service.client.get("/metrics")).text

    ping = service.seen.ping()
    await service.runtime.bus.publish(ping)
    await service.seen.wait_for(ping.ping_id)

    # The processed counter is updated after the handler returns: poll until the scrape shows this message.
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await service.client.get("/metrics")
            after = response.text
            if _total(after, "modelops_received_processed_messages_total", **received) > _total(
                before, "modelops_received_processed_messages_total", **received
            ):
                break
            await asyncio.sleep(0.05)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    name = "modelops_published_messages_total"
    assert _total(after, name, **published) >= _total(before, name, **published) + 1
    name = "modelops_received_messages_total"
    assert _total(after, name, **received) >= _total(before, name, **received) + 1
    assert _total(after, "modelops_received_processed_messages_total", status="acked", **received) >= 1
    lag = _samples(after, "modelops_consumer_lag", topic=topic, partition="0", consumer=service.group)
    assert len(lag) == 1
    assert lag[0] >= 0


async def test_metrics_count_http_requests_by_route_template_and_leave_probes_out(service):
    before = (await service.client.get("/metrics")).text
    for _ in range(3):
        await service.client.get("/conflict")
    await service.client.get("/healthz")
    after = (await service.client.get("/metrics")).text
    requests = {"handler": "/conflict", "method": "GET", "status": "4xx"}
    assert _total(after, "http_requests_total", **requests) == _total(before, "http_requests_total", **requests) + 3
    assert _total(after, "http_request_duration_seconds_count", handler="/conflict", method="GET") >= 3
    assert _total(after, "http_requests_total", handler="/healthz") == 0


# --- problem details -----------------------------------------------------------------------------------------------


async def test_a_raised_problem_becomes_problem_json(service):
    body = _assert_problem(await service.client.get("/conflict"), 409, "conflict-thing")
    assert body["title"] == "Conflict"
    assert body["detail"] == "the thing already exists"
    assert body["instance"] == "/conflict"
    assert body["thing"] == "t-1"  # extension members ride along


async def test_an_unknown_route_is_a_404_problem(service):
    body = _assert_problem(await service.client.get("/no/such/route"), 404, "not-found")
    assert body["title"] == "Not Found"


async def test_an_invalid_request_is_a_422_problem_listing_the_errors(service):
    ok = await service.client.post("/things", json={"name": "a", "count": 1})
    assert ok.status_code == 201

    invalid = await service.client.post("/things", json={"name": "", "count": -1})
    body = _assert_problem(invalid, 422, "validation-error")
    assert isinstance(body["errors"], list)
    locations = sorted(tuple(error["location"]) for error in body["errors"])
    assert locations == [("body", "count"), ("body", "name")]
    for error in body["errors"]:
        assert error["message"]
        assert error["type"]


async def test_an_unexpected_error_is_a_500_problem_without_internals(service):
    response = await service.client.get("/boom", headers={REQUEST_ID: "rid-boom"})
    body = _assert_problem(response, 500, "internal-error")
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert set(body) == {"type", "title", "status", "instance", "detail"}
    # The id is how an operator finds the logged traceback that the client is told to look for.
    assert response.headers[REQUEST_ID] == "rid-boom"


# --- request ids ---------------------------------------------------------------------------------------------------


async def test_a_given_request_id_is_echoed_and_a_missing_one_is_minted(service):
    given = await service.client.get("/healthz", headers={REQUEST_ID: "rid-given-1"})
    assert given.headers[REQUEST_ID] == "rid-given-1"

    first = (await service.client.get("/healthz")).headers[REQUEST_ID]
    second = (await service.client.get("/healthz")).headers[REQUEST_ID]
    assert first
    assert second
    assert first != second

    problem = await service.client.get("/no/such/route", headers={REQUEST_ID: "rid-given-2"})
    assert problem.headers[REQUEST_ID] == "rid-given-2"


@contextmanager
def _service_logging(settings: Settings) -> Iterator[None]:
    """The service's own log handler (configure_logging's) for the length of the block, then the previous ones.

    Entered inside the test body: pytest starts a fresh capsys buffer for each phase, so a handler made during
    a fixture's setup would write to a buffer closed by the time the test runs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(settings)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_log_lines_carry_the_request_id_and_trace_id(service, capsys):
    with _service_logging(service.runtime.settings):
        response = await service.client.get("/log", headers={REQUEST_ID: "rid-log-1"})
        log.info("outside any request")
        boom = await service.client.get("/boom", headers={REQUEST_ID: "rid-log-2"})
    assert response.status_code == 200
    assert boom.status_code == 500
    records = _json_lines(capsys.readouterr().err)

    handled = [r for r in records if r["message"] == "handled a request"]
    assert len(handled) == 1
    assert handled[0]["request_id"] == "rid-log-1"
    assert handled[0]["trace_id"] == response.json()["trace_id"]
    assert handled[0]["service"] == SERVICE
    assert handled[0]["level"] == "INFO"

    outside = [r for r in records if r["message"] == "outside any request"]
    assert len(outside) == 1
    assert outside[0]["request_id"] is None

    unhandled = [r for r in records if r["message"] == "unhandled error on GET /boom"]
    assert len(unhandled) == 1  # logged once, by us, not again by the server the error would escape to
    assert unhandled[0]["level"] == "ERROR"
    assert unhandled[0]["request_id"] == "rid-log-2"
    assert SECRET in unhandled[0]["exc_info"]  # the traceback is in the log, where the 500 points


# --- the outbox through the runtime --------------------------------------------------------------------------------


async def test_a_handlers_emit_is_relayed_with_causation(service):
    parent = service.seen.ping("emit")
    parent_envelope = await service.runtime.bus.publish(parent, correlation_id=f"corr-{parent.ping_id}")

    _, handled_parent = await service.seen.wait_for(parent.ping_id)
    child, child_envelope = await service.seen.wait_for(f"{parent.ping_id}-child")

    assert handled_parent.id == parent_envelope.id
    assert child.payload == "child"
    assert child_envelope.causation_id == parent_envelope.id
    assert child_envelope.correlation_id == f"corr-{parent.ping_id}"  # inherited from the causing event
    assert child_envelope.source == f"/services/{SERVICE}"
    assert child_envelope.id != parent_envelope.id

    pool = service.runtime.pool
    async with asyncio.timeout(WAIT_S):
        while await pool.fetchval("SELECT count(*) FROM outbox"):
            await asyncio.sleep(0.05)
    processed = await pool.fetch(
        "SELECT message_id FROM processed_messages WHERE consumer = $1 AND message_id = any($2::text[])",
        service.group,
        [parent_envelope.id, child_envelope.id],
    )
    assert {row["message_id"] for row in processed} == {parent_envelope.id, child_envelope.id}

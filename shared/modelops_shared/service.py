"""Service app factory: FastAPI with /healthz, /readyz, /metrics, problem+json errors and request ids; the
runtime a service composes (pool with migrations, bus with consumers, outbox relay, object store); and
`state_dependency`, how routes reach what the lifespan started."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import Annotated, Any, TypeVar, cast

import asyncpg
import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from modelops_contracts import Topic
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.status import WS_1008_POLICY_VIOLATION
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from .bus import Bus, Handler, IdempotentConsumer, OutboxRelay
from .db import apply_migrations, create_pool
from .problems import Problem, document_problems, install_problem_handlers, problem_response, unexpected_error_response
from .service_tokens import ServiceCaller, ServiceTokenError, TrustedServices
from .settings import Settings
from .storage import ObjectNotFound, ObjectStore, open_store
from .telemetry import REQUEST_ID, configure_logging, configure_tracing, request_id_var

T = TypeVar("T")
ReadinessCheck = Callable[[], Awaitable[bool]]
# FastAPI's `dependency_overrides`: a dependency → what answers in its place (a test's fake).
DependencyOverrides = Mapping[Callable[..., Any], Callable[..., Any]]
READINESS_TIMEOUT_S = 2.0
# Readable without a service token: they reveal no artifact.
OPERATIONAL_PATHS = ("/healthz", "/readyz", "/metrics")
# http_requests_total and http_request_duration_seconds by route template, method and status class. Made once per
# process and shared by every app built in it (tests build many): a second registration of the same names would
# be refused and leave that app unmeasured.
HTTP_METRICS = metrics.default()


@dataclass(frozen=True)
class Subscription:
    topic: Topic
    group: str
    handler: Handler


@dataclass
class Runtime:
    """The connections one service process holds; built by `Runtime.started`, torn down in reverse."""

    settings: Settings
    pool: asyncpg.Pool
    bus: Bus
    store: ObjectStore
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def started(
        cls,
        settings: Settings,
        *,
        schema: str,
        migrations: Traversable | None = None,
        subscriptions: tuple[Subscription, ...] | Callable[[Runtime], tuple[Subscription, ...]] = (),
    ) -> AsyncIterator[Runtime]:
        """Pool and migrations first (consumers need their tables), then the bus and its consumers, then the relay.
        `subscriptions` may be a function of the runtime, for handlers that need its pool or store."""
        configure_logging(settings)
        configure_tracing(settings)
        pool = await create_pool(settings, schema)
        try:
            await apply_migrations(pool, schema, *(((schema, migrations),) if migrations else ()))
            bus = Bus(settings)
            runtime = cls(settings=settings, pool=pool, bus=bus, store=open_store(settings.store_url, settings))
            for subscription in subscriptions(runtime) if callable(subscriptions) else subscriptions:
                IdempotentConsumer(bus, pool, subscription.topic, subscription.group, subscription.handler).subscribe()
            await bus.start()
            try:
                runtime._tasks.append(asyncio.create_task(OutboxRelay(pool, bus).run(), name="outbox-relay"))
                yield runtime
            finally:
                for task in runtime._tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await bus.stop()
        finally:
            await pool.close()

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {
            "broker": self._broker_ready,
            "consumers": self._consumers_ready,
            "database": self._database_ready,
            "store": self._store_ready,
        }

    async def _consumers_ready(self) -> bool:
        return self.bus.consuming()

    async def _broker_ready(self) -> bool:
        return await self.bus.ready(timeout=READINESS_TIMEOUT_S)

    async def _database_ready(self) -> bool:
        return bool(await self.pool.fetchval("SELECT true"))

    async def _store_ready(self) -> bool:
        with contextlib.suppress(ObjectNotFound):
            await self.store.stat(".readyz")
        return True


def create_service_app(
    settings: Settings,
    *,
    title: str,
    version: str = "0.1.0",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    overrides: DependencyOverrides | None = None,
    internal: bool = True,
    open_paths: tuple[str, ...] = (),
) -> FastAPI:
    """A FastAPI app with the platform's operational routes and error handling.

    Readiness checks are read from `app.state.readiness_checks` (set by the lifespan once connections exist),
    so /readyz answers 503 until the service has really started. `overrides` replace dependencies (a test's fakes
    for what the lifespan would start). An `internal` service answers 401 to any caller without a valid service
    token, except on the operational routes and `open_paths`; the gateway, which authenticates users by API key,
    is the one service that is not internal.
    """
    app = FastAPI(title=title, version=version, lifespan=lifespan)
    app.state.readiness_checks = {}
    app.dependency_overrides.update(overrides or {})
    install_problem_handlers(app)
    document_problems(app)
    # Probes and scrapes are left out so that they do not drown the traffic.
    Instrumentator(excluded_handlers=["/healthz", "/readyz", "/metrics"]).add(HTTP_METRICS).instrument(app)
    # A server span per request, continuing the caller's `traceparent` (probes and scrapes left out).
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    _trace_each_request_from_its_own_headers(app)

    if internal:
        app.add_middleware(_ServiceTokens, TrustedServices.from_settings(settings), OPERATIONAL_PATHS + open_paths)

    app.add_middleware(_RequestIds)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok", "service": settings.service_name}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "A dependency is not reachable"}})
    async def readyz(request: Request) -> JSONResponse:
        """Every dependency (broker, database, object store) answers, and every consume loop runs."""
        checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
        results = await asyncio.gather(*(_run_check(check) for check in checks.values()))
        status = {name: "ok" if ok else "unavailable" for name, ok in zip(checks, results, strict=True)}
        if checks and all(results):
            return JSONResponse({"status": "ready", "checks": status})
        return problem_response(request, 503, "not-ready", "a dependency is not reachable", checks=status)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _trace_each_request_from_its_own_headers(app: FastAPI) -> None:
    """Run every request in an empty trace context, outside the OpenTelemetry middleware. That middleware extracts
    `traceparent` on top of the current context, so without this a span left current where the connection is served
    (a client in the same process; a library that attached a context and never detached it, as FastStream's consumer
    middleware does when a handler raises) becomes the parent of every later request, and unrelated jobs share one
    trace."""
    build = app.build_middleware_stack

    def build_fresh() -> ASGIApp:
        inner = build()

        async def fresh(scope: Scope, receive: Receive, send: Send) -> None:
            token = otel_context.attach(otel_context.Context())
            try:
                await inner(scope, receive, send)
            finally:
                otel_context.detach(token)

        return fresh

    app.build_middleware_stack = build_fresh  # type: ignore[method-assign]  # as FastAPIInstrumentor does


class _RequestIds:
    """Every HTTP request runs under its caller's X-Request-ID, or a new one, which its answer carries back. An error
    nobody anticipated is answered here rather than by Starlette's outermost error middleware, which runs after this
    one has returned: so the 500 carries the request id, its log line too, and the error is not re-raised. Plain
    ASGI, as is _ServiceTokens: `@app.middleware("http")` costs a task and a memory stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = Headers(scope=scope).get(REQUEST_ID) or uuid.uuid4().hex
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID] = rid
            await send(message)

        token = request_id_var.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:  # too late for a 500: the client has the status already
                raise
            await unexpected_error_response(HTTPConnection(scope), exc)(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class _ServiceTokens:
    """Default deny: every HTTP request and WebSocket handshake but to `open_paths` needs a token from a trusted
    service; its caller lands in `request.state.service_caller` (routes read it as `ServiceCallerDep`)."""

    def __init__(self, app: ASGIApp, trusted: TrustedServices, open_paths: tuple[str, ...]) -> None:
        self.app = app
        self.trusted = trusted
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = HTTPConnection(scope) if scope["type"] in ("http", "websocket") else None  # lifespan passes
        if connection is not None and connection.url.path not in self.open_paths:
            try:
                connection.state.service_caller = self.trusted.verify(connection.headers.get("Authorization"))
            except ServiceTokenError as error:
                await self._refuse(connection, error)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _refuse(connection: HTTPConnection, error: ServiceTokenError) -> ASGIApp:
        if connection.scope["type"] == "websocket":
            return WebSocketClose(WS_1008_POLICY_VIOLATION, "service-token-required")  # the handshake gets a 403
        response = problem_response(connection, 401, "service-token-required", str(error))
        response.headers["WWW-Authenticate"] = 'Bearer realm="modelops-internal"'
        return response


def _service_caller(request: Request) -> ServiceCaller:
    caller: ServiceCaller = request.state.service_caller
    return caller


# The verified caller of an internal route, as a route parameter's type.
ServiceCallerDep = Annotated[ServiceCaller, Depends(_service_caller)]

USER_FACING = "gateway"
ROLES = ("viewer", "developer", "approver", "admin")


@dataclass(frozen=True)
class ActingUser:
    """The user an internal route acts for: named only by the gateway, in its service token."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _acting_user(caller: ServiceCallerDep) -> ActingUser:
    if caller.service != USER_FACING or caller.role not in ROLES:
        raise Problem(403, "acting-user-required", f"this route acts for a user, vouched for by the {USER_FACING}")
    return ActingUser(caller.subject, caller.role)


def _acting_writer(user: Annotated[ActingUser, Depends(_acting_user)]) -> ActingUser:
    if user.role == "viewer":
        raise Problem(403, "forbidden", "changing anything needs the developer role")
    return user


# Any user the gateway vouches for; one with at least the developer role.
ActingUserDep = Annotated[ActingUser, Depends(_acting_user)]
ActingWriterDep = Annotated[ActingUser, Depends(_acting_writer)]


def state_dependency(
    name: str, kind: type[T], *, detail: str = "the service is starting", retry_after: int | None = None
) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A dependency (HTTP and WebSocket routes) answering `app.state.<name>`, which the lifespan sets once its
    connections are up; until then a 503 `not-ready` problem (with `Retry-After` when `retry_after` is given). `kind`
    types the answer and is not checked, so that a test may override the dependency with a fake."""
    extensions = {} if retry_after is None else {"retry_after": retry_after}

    async def dependency(connection: HTTPConnection) -> T:  # async: a plain function would run in a thread
        value = getattr(connection.app.state, name, None)
        if value is None:
            raise Problem(503, "not-ready", detail, **extensions)
        return cast(T, value)

    dependency.__name__ = dependency.__qualname__ = f"{name}_from_state"
    return dependency


async def _run_check(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
    except Exception:
        return False


def serve(app: FastAPI, settings: Settings) -> None:
    """Run the app on the service's configured port (one process, HTTP and consumers on one event loop)."""
    # The modules and the app built so far live as long as the process: frozen, full collections skip them (a
    # loaded gateway's took 0.2 s every few seconds, walking its routes and models).
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.port_of(settings.service_name),
        log_config=None,
        access_log=False,
    )

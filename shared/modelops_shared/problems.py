"""RFC 9457 problem details: `Problem` for the web layer to raise (domain errors for the logic below it), handlers
that turn every error into `application/problem+json` with a stable `type` and never a stack trace (`problem_for`
renders one directly, for a WebSocket's denial), the middleware that does the same for Starlette's own plain-text
errors, and `document_problems`, which makes an app's OpenAPI document say so."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PROBLEM_BASE, PROBLEM_JSON, DomainError

__all__ = ["PROBLEM_BASE", "PROBLEM_JSON", "PROBLEM_SCHEMA", "Problem", "problem_for", "problem_response"]
# RFC 9457's members; a problem type may add its own (`errors` of a 422, `retry_after`, …).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}

log = logging.getLogger(__name__)
_UNSTORABLE_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)
# Starlette's own errors with a slug of ours: HTTPStatus(413)'s phrase differs between Python versions.
_SLUGS = {413: "body-too-large"}
# A route class may reshape the problems the middleware writes for its routes (OpenAI's `error` member): it leaves
# a callable under this scope key.
RESHAPE_KEY = "modelops.reshape_problem"


class Problem(DomainError):
    """An error a client should see, raised by the web layer: `slug` names a stable problem type, `extensions` add
    members. Without a detail the problem has none."""

    def __init__(self, status: int, slug: str, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or slug, slug=slug, status=status, **extensions)
        self._detail = detail

    @property
    def detail(self) -> str | None:
        return self._detail


def problem_response(
    request: HTTPConnection, status: int, slug: str, detail: str | None = None, **extensions: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions)
    headers = {"Retry-After": str(extensions["retry_after"])} if "retry_after" in extensions else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def unexpected_error_response(request: HTTPConnection, exc: BaseException) -> JSONResponse:
    """The 500 for an error nobody anticipated: its traceback goes to the log, never to the client."""
    method = request.scope.get("method", "WEBSOCKET")
    log.error("unhandled error on %s %s", method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "internal-error", "an unexpected error occurred; see the service log")


def problem_for(request: HTTPConnection, exc: Exception) -> JSONResponse:
    """The problem response for any error: a domain error (a Problem included), an HTTP exception, text Postgres
    cannot store, invalid input, a dependency too slow (503, to retry: no free pooled connection, a statement past
    its timeout), or the unexpected (500)."""
    if isinstance(exc, DomainError):
        return problem_response(request, exc.status, exc.slug, exc.detail, **exc.extensions)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else None
        response = problem_response(request, exc.status_code, _slug_of(exc.status_code), detail)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request)
        return response
    if isinstance(exc, _UNSTORABLE_TEXT):
        # Text Postgres cannot hold (a NUL byte) that no pattern at the edge caught: the client's input, not our bug.
        return problem_response(request, 422, "invalid-text", "the request holds text with a NUL or invalid character")
    if isinstance(exc, TimeoutError):
        log.warning("timed out on %s %s", request.scope.get("method", "WEBSOCKET"), request.url.path, exc_info=exc)
        return problem_response(
            request, 503, "dependency-timeout", "a dependency did not answer in time; retry", retry_after=5
        )
    if isinstance(exc, RequestValidationError):
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem_response(request, 422, "validation-error", "the request is not valid", errors=errors)
    return unexpected_error_response(request, exc)


def _slug_of(status: int) -> str:
    return _SLUGS.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "-")


def _allowed_methods(request: HTTPConnection) -> str:
    """The methods of the resource at this path: Starlette's own 405 names only those of the first route whose path
    matched. A literal path (`/v1/jobs/training`) is its own resource, not an instance of a template beside it
    (`/v1/jobs/{job_id}`). FastAPI keeps included routers whole; `iter_route_contexts` walks their routes."""
    matched = [
        context
        for context in iter_route_contexts(request.app.router.routes)
        if context.route.matches(request.scope)[0] is not Match.NONE
    ]
    literal = [context for context in matched if context.path == request.url.path]
    return ", ".join(sorted({method for context in literal or matched for method in context.methods or ()}))


class PlainErrorsAsProblems:
    """Starlette answers a few errors itself, in plain text, below the exception handlers (a body over a route's
    `max_body_size`: 413). This middleware answers those as problem+json too, so that every error has one shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        plain_status: int | None = None

        async def send_as_problem(message: Message) -> None:
            nonlocal plain_status
            if message["type"] == "http.response.start" and message["status"] >= 400 and _is_plain(message):
                plain_status = message["status"]
                return
            if plain_status is None:
                await send(message)
            elif not message.get("more_body"):
                status = plain_status
                problem = problem_response(HTTPConnection(scope), status, _slug_of(status), HTTPStatus(status).phrase)
                reshape = scope.get(RESHAPE_KEY)
                await (reshape(problem) if reshape else problem)(scope, receive, send)

        await self.app(scope, receive, send_as_problem)


def _is_plain(start: Message) -> bool:
    return any(name == b"content-type" and value.startswith(b"text/plain") for name, value in start["headers"])


def install_problem_handlers(app: FastAPI) -> None:
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return problem_for(request, exc)

    # Each named here is answered inside the app; only `Exception` is left to Starlette's outermost middleware.
    for error_type in (DomainError, StarletteHTTPException, RequestValidationError, *_UNSTORABLE_TEXT, Exception):
        app.add_exception_handler(error_type, on_error)
    app.add_middleware(PlainErrorsAsProblems)


def document_problems(app: FastAPI) -> None:
    """Make the app's OpenAPI document say what its handlers do: every error response (4xx, 5xx) of every operation
    is `application/problem+json`, FastAPI's own 422 (`HTTPValidationError`, JSON) included; an operation with a
    body may answer 400 (a body that does not parse); an optional parameter is left out, never sent as null."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    responses.setdefault("400", {"description": "Bad Request"})
                for status, response in responses.items():
                    if status[0] in "45":
                        response["content"] = problem
                for parameter in operation.get("parameters", []):
                    _without_null(parameter.get("schema", {}))
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["Problem"] = PROBLEM_SCHEMA
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _without_null(schema: dict[str, Any]) -> None:
    """`anyOf: [X, null]` as X: pydantic's rendering of an optional parameter, which a query string cannot carry."""
    options = schema.get("anyOf")
    if options and {"type": "null"} in options:
        kept = [option for option in options if option != {"type": "null"}]
        del schema["anyOf"]
        schema.update(kept[0] if len(kept) == 1 else {"anyOf": kept})

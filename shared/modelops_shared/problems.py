"""RFC 9457 problem details: one exception type to raise, and handlers that turn every error into
`application/problem+json` with a stable `type` and never a stack trace (`problem_for` renders one directly, for
a WebSocket's denial response or a route that reshapes its errors)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from .errors import DomainError

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://modelops.dev/problems/"

log = logging.getLogger(__name__)


class Problem(Exception):
    """An error a client should see: `slug` names a stable problem type, `extensions` add members."""

    def __init__(self, status: int, slug: str, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or slug)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extensions = extensions


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
    """The problem response for any error: a Problem or a domain error, an HTTP exception, invalid input, or the
    unexpected (500)."""
    if isinstance(exc, Problem):
        return problem_response(request, exc.status, exc.slug, exc.detail, **exc.extensions)
    if isinstance(exc, DomainError):
        return problem_response(request, exc.status, exc.slug, str(exc), **exc.extensions)
    if isinstance(exc, StarletteHTTPException):
        slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
        detail = exc.detail if isinstance(exc.detail, str) else None
        response = problem_response(request, exc.status_code, slug, detail)
        response.headers.update(exc.headers or {})
        return response
    if isinstance(exc, RequestValidationError):
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem_response(request, 422, "validation-error", "the request is not valid", errors=errors)
    return unexpected_error_response(request, exc)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return problem_for(request, exc)

    for error_type in (Problem, DomainError, StarletteHTTPException, RequestValidationError, Exception):
        app.add_exception_handler(error_type, on_error)

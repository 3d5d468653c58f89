"""Errors the official `openai` client can read: problem+json plus OpenAI's `{"error": {"message", "type", "param",
"code"}}` member. The client shows `error.message` in its exceptions and sets their `type`, `param` and `code` from
the member; it sees nothing else. `OpenAIErrorRoute` answers a router's errors so; `openai_error_of` gives the member
for an error that has no response of its own (one sent inside an SSE stream)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from .problems import PROBLEM_BASE, PROBLEM_JSON, RESHAPE_KEY, Problem

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_REPLACED_HEADERS = ("content-length", "content-type")
_RETRIED = (408, 429)  # the 4xx worth a retry: a timeout, a rate limit (Retry-After says when)


class OpenAIErrorRoute(APIRoute):
    """Answers every error of its routes (authentication, validation and rate limits included, since those are
    raised by its dependencies) as the app's problem+json with OpenAI's `error` member; use it as a router's
    `route_class`."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette answers a few errors below the route handler (a body over `max_body_size`): reshaped too.
        scope[RESHAPE_KEY] = _with_openai_error
        await super().handle(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_openai_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return _with_openai_error(await _app_answer(request, exc))

        return handle_with_openai_errors


def openai_error(status: int, problem: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's error object for the problem+json body `problem` answered with `status`: the detail (and the first
    field error) as message, a type by status, the field as param, the problem type's slug as code."""
    return {
        "message": _message(problem),
        "type": "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error"),
        "param": _param(problem),
        "code": str(problem.get("type", "")).rsplit("/", 1)[-1] or None,
    }


def openai_error_of(problem: Problem) -> dict[str, Any]:
    """OpenAI's error object for `problem`, as the route class would answer it."""
    body = {"type": PROBLEM_BASE + problem.slug, "title": HTTPStatus(problem.status).phrase, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    return openai_error(problem.status, body | problem.extensions)


async def _app_answer(request: Request, exc: Exception) -> Response:
    """What the app's own exception handlers answer, so both error shapes stay one."""
    for kind in type(exc).__mro__:
        handler = request.app.exception_handlers.get(kind)
        if handler is not None:
            answer = handler(request, exc)
            response: Response = await answer if inspect.isawaitable(answer) else answer
            return response
    raise exc


def _with_openai_error(response: Response) -> Response:
    problem: dict[str, Any] = json.loads(bytes(response.body))
    status = response.status_code
    problem["error"] = openai_error(status, problem)
    # Length and type described the old body; the rest (Retry-After, WWW-Authenticate, rate limits) still holds.
    headers = {name: value for name, value in response.headers.items() if name not in _REPLACED_HEADERS}
    if status < 500 and status not in _RETRIED:
        # The client retries every 409 (OpenAI's lock timeouts); ours (a finished job, a taken name) never change.
        headers["x-should-retry"] = "false"
    return JSONResponse(problem, status, headers=headers, media_type=PROBLEM_JSON)


def _first_error(problem: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first of a request validation's `errors`, or of a dataset's row-level report."""
    errors = problem.get("errors")
    return errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None


def _message(problem: Mapping[str, Any]) -> str:
    message = str(problem.get("detail") or problem.get("title") or "the request failed")
    first = _first_error(problem)
    if first is None:
        return message
    if "location" in first:  # FastAPI's validation: ["body", "purpose"]
        where = ".".join(str(part) for part in first["location"][1:])
    else:  # a dataset's report: the line and the field in the row
        line = f"line {first['line']}" if first.get("line") is not None else ""
        where = ", ".join(part for part in (line, first.get("field") or "") if part)
    return f"{message}; {where + ': ' if where else ''}{first.get('message', '')}"


def _param(problem: Mapping[str, Any]) -> str | None:
    if isinstance(problem.get("param"), str):  # a problem about one request field says which
        return str(problem["param"])
    first = _first_error(problem)
    if first is None:
        return None
    if "location" in first:
        return str(first["location"][-1]) if first["location"] else None
    return "file"

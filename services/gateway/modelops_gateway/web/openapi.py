"""OpenAPI fragments the routes declare: which problem statuses an operation answers, and the shape of a multipart
body a route reads by hand (streamed), which FastAPI cannot derive."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting RFC 9457 problem details for each status."""
    return {
        status: {"description": HTTPStatus(status).phrase}  # problem+json, as document_problems writes for every one
        for status in statuses
    }


def multipart_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its multipart body by hand (streamed): FastAPI cannot derive it."""
    schema = {"type": "object", "required": required, "properties": properties, "additionalProperties": False}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}

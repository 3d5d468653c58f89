"""OpenAPI fragments: problem responses for the document, and the multipart bodies of artifact, dataset and file
uploads (read by hand, streamed, so FastAPI cannot derive them)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from modelops_contracts import ArtifactKind, DatasetSchema
from modelops_shared.problems import PROBLEM_JSON, PROBLEM_SCHEMA


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting RFC 9457 problem details for each status."""
    return {
        status: {"description": HTTPStatus(status).phrase, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind", "name", "files"],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {"type": "string", "enum": [kind.value for kind in ArtifactKind]},
                        "name": {"type": "string", "minLength": 1, "maxLength": 200},
                        "version": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 100,
                            "description": "Default: the next number for this kind and name",
                        },
                        "parents": {
                            "type": "string",
                            "description": 'JSON: [{"artifact_id": "...", "relation": "trained_from"}, ...]',
                        },
                        "files": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "format": "binary"},
                            "description": "One part per file; each part's filename is its path in the artifact, "
                            "relative and `/`-separated, e.g. tokenizer/tokenizer.json",
                        },
                    },
                }
            }
        },
    }
}


def _multipart(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties, "additionalProperties": False}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


DATASET_BODY = _multipart(
    ["name", "schema", "file"],
    {
        "name": {
            "type": "string",
            "pattern": r"^[a-z0-9][a-z0-9._-]{0,62}$",
            "description": "The dataset; its first upload creates it as version 0, each later one adds a version",
        },
        "schema": {"type": "string", "enum": [kind.value for kind in DatasetSchema]},
        "file": {
            "type": "string",
            "format": "binary",
            "description": "The rows; the filename's extension tells the format: .jsonl, .ndjson, .csv, .parquet, .pq",
        },
    },
)

FILE_BODY = _multipart(
    ["file", "purpose"],
    {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "JSONL in OpenAI's chat fine-tuning format, one {messages: [...]} example a line",
        },
        "purpose": {"type": "string", "enum": ["fine-tune"]},
    },
)

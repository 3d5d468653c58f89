"""What both clients send and parse: multipart bodies for uploads, query parameters, training requests, and OpenAI's
chat completions (the body of one question, the pieces of a streamed answer)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .http import Parts
from .models import TrainingJobRequest

DEFAULT_RELATION = "trained_from"


def params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones."""
    return {name: value for name, value in values.items() if value is not None}


def directory_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{directory} holds no files")
    return files


def artifact_parts(directory: Path) -> Parts:
    """One `files` part per file, named by its path relative to `directory` (what the gateway records)."""
    files = directory_files(directory)

    def parts(stack: ExitStack) -> list[tuple[str, Any]]:
        return [("files", (p.relative_to(directory).as_posix(), stack.enter_context(p.open("rb")))) for p in files]

    return parts


def parent_ref(parent: str) -> dict[str, str]:
    """`ID` or `ID:relation` as the gateway's parent reference (a bare id was trained from its parent)."""
    artifact_id, _, relation = parent.partition(":")
    return {"artifact_id": artifact_id, "relation": relation or DEFAULT_RELATION}


def artifact_fields(kind: str, name: str, version: str | None, parents: list[str] | None) -> dict[str, Any]:
    """The import's form fields; each parent is `ID` or `ID:relation`."""
    refs = json.dumps([parent_ref(p) for p in parents]) if parents else None
    return params(kind=kind, name=name, version=version, parents=refs)


def file_part(path: Path) -> Parts:
    def parts(stack: ExitStack) -> list[tuple[str, Any]]:
        return [("file", (path.name, stack.enter_context(path.open("rb"))))]

    return parts


def training_body(request: TrainingJobRequest | None, fields: dict[str, Any]) -> dict[str, Any]:
    """A training request as JSON, only the fields set: the gateway applies its own defaults to the rest."""
    model = request or TrainingJobRequest.model_validate(fields)
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


def chat_body(model: str, question: str, sampling: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """One user message to `model`, with OpenAI's sampling fields (`max_tokens`, `temperature`, …) as given."""
    return {"model": model, "messages": [{"role": "user", "content": question}], "stream": stream, **sampling}


def chat_delta(line: str) -> str | None:
    """The text a line of a streamed chat completion adds (Server-Sent Events: `data: {chunk}`), if any."""
    if not line.startswith("data:") or (data := line.removeprefix("data:").strip()) == "[DONE]":
        return None
    choices = json.loads(data).get("choices") or [{}]
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) and content else None

"""The refusals of the model imports feature."""

from __future__ import annotations

from modelops_shared.errors import Invalid, NotFound


class ImportNotFound(NotFound):
    slug = "import-not-found"

    def __init__(self, import_id: str) -> None:
        super().__init__(f"no model import {import_id}")


class NotAGguf(Invalid):
    slug = "not-a-gguf"

    def __init__(self, filename: str) -> None:
        super().__init__(f"{filename} is not a GGUF file (it does not start with the GGUF magic bytes)")

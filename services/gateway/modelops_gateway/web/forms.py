"""The text fields of a multipart upload read as a pydantic model, with FastAPI's own 422 when they are invalid."""

from __future__ import annotations

from typing import TypeVar

from fastapi.exceptions import RequestValidationError
from modelops_shared.problems import Problem
from pydantic import BaseModel, ValidationError

_Form = TypeVar("_Form", bound=BaseModel)


def form_model(model: type[_Form], fields: dict[str, list[str]]) -> _Form:
    """The text fields as `model`, each sent once; invalid ones answer FastAPI's own 422, located in the body."""
    repeated = [name for name, values in fields.items() if len(values) > 1]
    if repeated:
        raise Problem(422, "repeated-field", f"send each field once: {', '.join(sorted(repeated))}")
    try:
        return model.model_validate({name: values[0] for name, values in fields.items()})
    except ValidationError as error:
        # The same 422 body as for any other invalid request, located in the body like FastAPI's own.
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False, include_context=False)]
        ) from None

"""The OpenAI request bodies the platform serves: checked by the gateway at its edge and served by the inference
service, so that both refuse the same requests the same way."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, StrictBool


def _json_number(value: object) -> object:
    """A JSON number as JSON Schema reads one: `1` and `1.0`, never `true` or `"1"` (which pydantic would coerce)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


def _json_integer(value: object) -> object:
    number = _json_number(value)
    if isinstance(number, float) and not number.is_integer():
        raise ValueError("must be an integer")
    return int(number)  # type: ignore[call-overload]


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
JsonFloat = Annotated[float, BeforeValidator(_json_number)]
TokenCount = Annotated[int, Field(ge=1), BeforeValidator(_json_integer)]  # bound inside the optional: documented
# OpenAI's own bound: up to 4 stop sequences. Each is matched against every decoded token, so each is short too.
StopText = Annotated[str, Field(min_length=1, max_length=256)]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Sampling(BaseModel):
    model: str = Field(min_length=1)
    max_tokens: TokenCount | None = None
    temperature: JsonFloat = Field(1.0, ge=0, le=2)
    top_p: JsonFloat = Field(1.0, gt=0, le=1)
    stop: StopText | Annotated[list[StopText], Field(max_length=4)] | None = None
    seed: JsonInt | None = None
    n: JsonInt = Field(1, ge=1, le=1, description="One choice per request")
    stream: StrictBool = False  # `"stream": 0` is not a request to stream, nor not to


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: TokenCount | None = None


class CompletionRequest(Sampling):
    prompt: str | list[str]
    echo: StrictBool = Field(False, description="Return the prompt before the completion (with its tokens' logprobs)")
    logprobs: Annotated[int, Field(ge=0, le=5), BeforeValidator(_json_integer)] | None = Field(
        None, description="Each token's log-probability, and those of the `logprobs` likeliest tokens at its position"
    )

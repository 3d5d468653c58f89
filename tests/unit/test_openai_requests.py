"""The OpenAI request bodies both the gateway and the inference service read (modelops_contracts.openai_requests):
what a client can make the server hold is bounded — here, the stop sequences every decoded token is matched against."""

from __future__ import annotations

import pytest
from modelops_contracts.openai_requests import ChatCompletionRequest
from pydantic import ValidationError

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stop", [None, "\n", ["a", "b", "c", "d"], "x" * 256])
def test_stop_takes_one_string_or_up_to_four(stop: object) -> None:
    assert ChatCompletionRequest.model_validate({"model": "m", "messages": MESSAGES, "stop": stop}).stop == stop


@pytest.mark.parametrize("stop", [["a", "b", "c", "d", "e"], "", ["x" * 257], [""]])
def test_more_or_longer_stop_sequences_are_refused(stop: object) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({"model": "m", "messages": MESSAGES, "stop": stop})

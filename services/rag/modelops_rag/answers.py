"""Grounded answers: the retrieved passages numbered in a prompt that asks the deployment to answer from them only
and to cite them as [n]; asked through the inference service's OpenAI API (as this service, with its own token),
whole or streamed. When the best passage is not similar enough to the question, the model is not asked at all: the
answer says nothing relevant was found, rather than letting a model invent one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from modelops_contracts.rag import AnswerView, Citation

from .domain import AnswerFailed

SYSTEM = (
    "You answer questions using only the numbered passages the user gives you. "
    "Cite the passages you use by their numbers in brackets, like [1]. "
    "If the passages do not contain the answer, say that you do not know."
)
PASSAGE_CHARS = 2000
CITED = ("document", "version", "chunk", "heading", "page", "score", "similarity")


def relevant(hits: list[dict[str, Any]], min_similarity: float) -> bool:
    """Whether the best passage is close enough to the question to answer from (cosine similarity of embeddings)."""
    similarities = [hit["similarity"] for hit in hits if hit["similarity"] is not None]
    return bool(similarities) and max(similarities) >= min_similarity


def citations_of(hits: list[dict[str, Any]]) -> list[Citation]:
    return [Citation(n=n, **{key: hit[key] for key in CITED}) for n, hit in enumerate(hits, 1)]


def not_known(collection: str, model: str, index_id: str) -> AnswerView:
    text = f"I don't know: nothing in the collection {collection!r} is relevant to this question."
    return AnswerView(answer=text, grounded=False, citations=[], model=model, index_id=index_id)


def messages_of(question: str, hits: list[dict[str, Any]]) -> list[dict[str, str]]:
    passages = "\n\n".join(
        f"[{n}] ({hit['document']}{' — ' + hit['heading'] if hit['heading'] else ''})\n{hit['text'][:PASSAGE_CHARS]}"
        for n, hit in enumerate(hits, 1)
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question}"},
    ]


async def ask(http: httpx.AsyncClient, model: str, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    """The deployment's whole answer: `text` and `usage`."""
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    try:
        response = await http.post("/v1/chat/completions", json=body)
    except httpx.TransportError as error:
        raise AnswerFailed(f"the inference service could not be reached: {error}", status=503) from None
    _raise_for(response.status_code, response.text, model)
    reply = response.json()
    return {"text": reply["choices"][0]["message"]["content"], "usage": reply.get("usage") or {}}


async def ask_streaming(
    http: httpx.AsyncClient, model: str, messages: list[dict[str, str]], max_tokens: int
) -> AsyncIterator[str]:
    """The answer's text as the deployment streams it."""
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code >= 400:
            _raise_for(response.status_code, (await response.aread()).decode(errors="replace"), model)
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices", []):
                if text := (choice.get("delta") or {}).get("content"):
                    yield text


def sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def _raise_for(status: int, text: str, model: str) -> None:
    if status == 404:
        raise AnswerFailed(f"no deployment serves the model {model!r}", status=422, slug="unknown-model")
    if status >= 400:
        raise AnswerFailed(
            f"deployment {model!r} answered {status}: {text[:500]}", status=502 if status >= 500 else 422
        )

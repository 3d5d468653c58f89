"""What answers a suite's items: a model the evaluator loads itself (transformers, with a PEFT adapter or not), or a
deployment's OpenAI API. Both answer greedily, so the same model and items give the same answers.

The local model answers a batch at a time, left-padded, on the worker thread. A deployment gets `concurrency`
requests in flight, which the inference service batches; busy answers (429, 503) are retried with backoff.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

import httpx
import torch
from modelops_shared.jobs import Transient
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from .domain import MetricUnusable, SubjectFailed
from .suites import Item

BUSY = {429, 503}


class Subject(Protocol):
    async def answer(self, items: list[Item], max_new_tokens: int) -> list[str]:
        """Greedy answers, one per item, in order."""
        ...

    async def loglikelihood(self, requests: list[tuple[Item, str]]) -> list[tuple[float, int]]:
        """Per (item, continuation): the summed log-probability of the continuation's tokens after the item's
        question, and how many tokens."""
        ...


class LocalModel:
    """A Hugging Face model directory (and an adapter of it), run by the evaluator on its worker thread."""

    def __init__(self, model_dir: Path, adapter_dir: Path | None, executor: Executor, seed: int) -> None:
        torch.manual_seed(seed)
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        if adapter_dir is not None:
            from peft import PeftModel  # only an adapter needs PEFT

            model = PeftModel.from_pretrained(model, adapter_dir)
        self.model = model.eval()
        self.executor = executor
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    def question_ids(self, item: Item) -> list[int]:
        """As the trainer formats it: BOS and the prompt (sft), or the chat template with the generation prompt."""
        if item.prompt is not None:
            bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
            return bos + list(self.tokenizer(item.prompt, add_special_tokens=False)["input_ids"])
        if not self.tokenizer.chat_template:
            raise SubjectFailed("the model's tokenizer has no chat template, which chat suites need")
        text = self.tokenizer.apply_chat_template(list(item.messages or ()), tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(str(text), add_special_tokens=False)["input_ids"])

    async def answer(self, items: list[Item], max_new_tokens: int) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._answer, items, max_new_tokens)

    async def loglikelihood(self, requests: list[tuple[Item, str]]) -> list[tuple[float, int]]:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._loglikelihood, requests)

    def _answer(self, items: list[Item], max_new_tokens: int) -> list[str]:
        questions = [self.question_ids(item) for item in items]
        width = max(map(len, questions))
        ids = torch.tensor([[self.pad_id] * (width - len(q)) + q for q in questions])
        mask = torch.tensor([[0] * (width - len(q)) + [1] * len(q) for q in questions])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.pad_id,
            )
        return [str(self.tokenizer.decode(row[width:], skip_special_tokens=True)) for row in out]

    def _loglikelihood(self, requests: list[tuple[Item, str]]) -> list[tuple[float, int]]:
        scored = []
        with torch.inference_mode():
            for item, continuation in requests:
                context = self.question_ids(item)
                target = list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])
                ids = torch.tensor([context + target])
                logits = self.model(input_ids=ids).logits[0, len(context) - 1 : -1].float()
                logprobs = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(target).unsqueeze(1))
                scored.append((float(logprobs.sum()), len(target)))
        return scored


class Deployment:
    """A deployment's OpenAI API on the inference service: completions for sft items, chat completions for chat."""

    def __init__(self, http: httpx.AsyncClient, served_model: str, concurrency: int, seed: int) -> None:
        self.http = http
        self.served_model = served_model
        self.slots = asyncio.Semaphore(concurrency)
        self.seed = seed

    async def answer(self, items: list[Item], max_new_tokens: int) -> list[str]:
        return list(await asyncio.gather(*(self._answer(item, max_new_tokens) for item in items)))

    async def loglikelihood(self, requests: list[tuple[Item, str]]) -> list[tuple[float, int]]:
        """Through `echo` with `logprobs`: the question and continuation scored in one request, the continuation's
        tokens told apart by their text offsets. Prompt items only: the API renders no chat template for a raw
        prompt."""
        if any(item.prompt is None for item, _ in requests):
            raise MetricUnusable("through a deployment, perplexity and multiple_choice score prompt (sft) items only")
        return list(await asyncio.gather(*(self._loglikelihood(item.prompt or "", text) for item, text in requests)))

    async def _loglikelihood(self, question: str, continuation: str) -> tuple[float, int]:
        body = {
            "model": self.served_model,
            "prompt": question + continuation,
            "echo": True,
            "logprobs": 0,
            "max_tokens": 1,
            "temperature": 0,
        }
        scored = (await self._post("/v1/completions", body))["choices"][0]["logprobs"]
        # The generated token (last) is not the continuation's.
        pairs = list(zip(scored["text_offset"], scored["token_logprobs"], strict=True))[:-1]
        mine = [logprob for offset, logprob in pairs if offset >= len(question) and logprob is not None]
        return float(sum(mine)), len(mine)

    async def _answer(self, item: Item, max_new_tokens: int) -> str:
        body = {"model": self.served_model, "max_tokens": max_new_tokens, "temperature": 0, "seed": self.seed}
        if item.prompt is not None:
            reply = await self._post("/v1/completions", {**body, "prompt": item.prompt})
            return str(reply["choices"][0]["text"])
        reply = await self._post("/v1/chat/completions", {**body, "messages": list(item.messages or ())})
        return str(reply["choices"][0]["message"]["content"] or "")

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.slots:
            retrying = AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(6),
                wait=wait_exponential(multiplier=0.5, max=8),
                reraise=True,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        response = await self.http.post(path, json=body)
                        if response.status_code in BUSY or response.status_code >= 500:
                            response.raise_for_status()
            except (httpx.TransportError, httpx.HTTPStatusError) as error:
                raise Transient(f"deployment {self.served_model}: {error}") from None
        if response.status_code >= 400:
            raise SubjectFailed(f"deployment {self.served_model} refused: {response.status_code} {response.text[:500]}")
        reply: dict[str, Any] = response.json()
        return reply


def _retryable(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError | httpx.HTTPStatusError)


async def choose(subject: Subject, items: list[Item]) -> tuple[list[float], list[float]]:
    """Multiple choice as lm-evaluation-harness scores it: each option, after a space, scored by its log-likelihood
    after the question; `acc` is 1 when the likeliest is the right one, `acc_norm` when the likeliest per character
    is (which does not favour short options)."""
    requests = [(item, continuation(item, choice)) for item in items for choice in item.choices or ()]
    scored = iter(await subject.loglikelihood(requests))
    acc, acc_norm = [], []
    for item in items:
        options = item.choices or ()
        logprobs = [next(scored)[0] for _ in options]
        per_char = [lp / max(len(option), 1) for lp, option in zip(logprobs, options, strict=True)]
        acc.append(float(max(range(len(options)), key=logprobs.__getitem__) == item.answer))
        acc_norm.append(float(max(range(len(options)), key=per_char.__getitem__) == item.answer))
    return acc, acc_norm


def continuation(item: Item, text: str) -> str:
    """`text` as it follows the item's question: after a space when a prompt ends in a word and the text starts
    with one (lm-evaluation-harness's target delimiter); as it is after a chat's generation prompt."""
    if item.prompt is None or not item.prompt or item.prompt[-1].isspace() or not text or text[0].isspace():
        return text
    return " " + text

"""From dataset rows to training batches: schema detection, the held-out split, sft/chat formatting with prompt
tokens masked out of the loss, best-fit-decreasing packing, and the collator that turns packed rows into tensors."""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from .domain import JobSpecError

IGNORE = -100
SCHEMAS = {
    "sft": ("prompt", "completion"),
    "chat": ("messages",),
    "preference": ("prompt", "chosen", "rejected"),
    "routing": ("prompt", "target"),
}


def detect_schema(columns: list[str]) -> str:
    """sft, chat, preference or routing, from the columns a dataset carries."""
    present = set(columns)
    # preference and routing before sft: their tables also have a `prompt` column
    for schema in ("preference", "routing", "sft", "chat"):
        if set(SCHEMAS[schema]) <= present:
            return schema
    raise JobSpecError(f"dataset columns {sorted(present)} match no schema (sft, chat, preference, routing)")


def split_rows(
    rows: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out): a seeded shuffle, then the first ⌈n·fraction⌉ rows held out (at least one when asked for)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = min(math.ceil(len(rows) * fraction), len(rows) - 1) if fraction > 0 else 0
    return [rows[i] for i in order[held:]], [rows[i] for i in order[:held]]


@dataclass(frozen=True)
class Example:
    """One tokenized row; `labels` is IGNORE where the token is context rather than something to learn."""

    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


@dataclass(frozen=True)
class Prompted:
    """A held-out row as a prompt and the answer it should produce (exact-match evaluation)."""

    prompt_ids: list[int]
    answer: str


def encode_sft(tokenizer: PreTrainedTokenizerBase, row: dict[str, Any]) -> Example:
    prompt = _bos(tokenizer) + tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + _eos(tokenizer)
    return Example(prompt + completion, [IGNORE] * len(prompt) + completion)


def encode_chat(tokenizer: PreTrainedTokenizerBase, row: dict[str, Any]) -> Example:
    """The conversation through the tokenizer's chat template; only assistant turns are learned.

    Assistant spans are found by rendering the conversation up to each turn (with the generation prompt) and up to
    its end, which works with any template that renders incrementally, generation markers or not.
    """
    messages = _messages(row)
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_render(tokenizer, messages[:i], generation_prompt=True)) if i else 0
        end = len(_render(tokenizer, messages[: i + 1]))
        if not text.startswith(_render(tokenizer, messages[: i + 1])):
            raise JobSpecError("the chat template does not render conversations incrementally")
        spans.append((start, end))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE
        for token, (begin, _) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ]
    return Example(list(encoded["input_ids"]), labels)


def prompted(tokenizer: PreTrainedTokenizerBase, schema: str, row: dict[str, Any]) -> Prompted | None:
    """The row as prompt and expected answer; None when it has no final answer to compare."""
    if schema == "sft":
        prompt = _bos(tokenizer) + tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        return Prompted(prompt, row["completion"])
    messages = _messages(row)
    if schema != "chat" or len(messages) < 2 or messages[-1]["role"] != "assistant":
        return None
    text = _render(tokenizer, messages[:-1], generation_prompt=True)
    return Prompted(tokenizer(text, add_special_tokens=False)["input_ids"], messages[-1]["content"])


def encode_rows(
    tokenizer: PreTrainedTokenizerBase, schema: str, rows: list[dict[str, Any]], seq_len: int
) -> list[Example]:
    """Tokenized rows cut to `seq_len`; rows left with nothing to learn (a prompt filling the window) are dropped."""
    if schema == "chat" and not tokenizer.chat_template:
        raise JobSpecError("the base model's tokenizer has no chat template, which chat datasets need")
    encode = encode_sft if schema == "sft" else encode_chat
    examples = []
    for row in rows:
        example = encode(tokenizer, row)
        example = Example(example.input_ids[:seq_len], example.labels[:seq_len])
        if example.trained_tokens:
            examples.append(example)
    return examples


@dataclass
class PackedRow:
    """Several examples back to back; position ids restart at each example, which keeps attention within it."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)

    def add(self, example: Example) -> None:
        self.input_ids.extend(example.input_ids)
        self.labels.extend(example.labels)
        self.position_ids.extend(range(len(example.input_ids)))


def pack(examples: list[Example], seq_len: int) -> list[PackedRow]:
    """Best-fit decreasing into rows of at most `seq_len` tokens: longest first, each into the fullest row it fits.

    Rows come out nearly full, so little compute goes to padding; the order is deterministic.
    """
    rows: list[PackedRow] = []
    free: list[tuple[int, int]] = []  # (space left, row index), sorted
    for example in sorted(examples, key=lambda e: -len(e.input_ids)):
        size = len(example.input_ids)
        slot = bisect.bisect_left(free, (size, -1))
        if slot == len(free):
            rows.append(PackedRow())
            space, index = seq_len, len(rows) - 1
        else:
            space, index = free.pop(slot)
        rows[index].add(example)
        if space - size > 0:
            bisect.insort(free, (space - size, index))
    return rows


class PackedDataset(torch.utils.data.Dataset[PackedRow]):
    def __init__(self, rows: list[PackedRow]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> PackedRow:
        return self.rows[index]


class PackedCollator:
    """Pads a batch of packed rows to its longest and counts the real tokens it hands out (for tokens/s).

    No attention mask is passed: with position ids that restart per example, transformers builds the block-diagonal
    causal mask itself, and trailing padding (never attended to under a causal mask, never learned) needs none.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id
        self.tokens_seen = 0

    def __call__(self, batch: list[PackedRow]) -> dict[str, torch.Tensor]:
        width = max(len(row.input_ids) for row in batch)
        self.tokens_seen += sum(len(row.input_ids) for row in batch)
        pad = [width - len(row.input_ids) for row in batch]
        return {
            "input_ids": torch.tensor(
                [row.input_ids + [self.pad_token_id] * n for row, n in zip(batch, pad, strict=True)]
            ),
            "labels": torch.tensor([row.labels + [IGNORE] * n for row, n in zip(batch, pad, strict=True)]),
            "position_ids": torch.tensor(
                [row.position_ids + list(range(n)) for row, n in zip(batch, pad, strict=True)]
            ),
        }


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    token = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise JobSpecError("the tokenizer has neither a pad nor an eos token")
    return int(token)


def _bos(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def _eos(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    if not isinstance(text, str):
        raise JobSpecError("the chat template did not render text")
    return text

"""A suite is one version of a dataset: each row becomes an item, a question and the answer expected of it.

sft rows ask `prompt` and expect `completion`; chat rows ask the conversation before the last message, which must be
the assistant's, and expect that message; multiple-choice rows ask `prompt` and expect `choices[answer]`, and can be
scored by which option the model finds likeliest. Preference rows compare answers rather than expect one, so they
are no suite. A seeded sample keeps the items' suite order, so the same seed scores the same items in the same batches.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .domain import SuiteUnusable


@dataclass(frozen=True)
class Item:
    """Row `index` of the suite: a completion prompt (sft, multiple choice) or a conversation (chat), and the expected
    answer; a multiple-choice item also has its options and the right one's index."""

    index: int
    reference: str
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    choices: tuple[str, ...] | None = None
    answer: int | None = None

    @property
    def question(self) -> str:
        """The question as text, for the report: the prompt, or the conversation as JSON."""
        return self.prompt if self.prompt is not None else json.dumps(list(self.messages or ()), ensure_ascii=False)


def items_of(table: pa.Table, *, max_items: int | None, seed: int) -> list[Item]:
    """The suite's items, all of them or a seeded sample of `max_items`; SuiteUnusable when its rows expect no
    answer."""
    columns = set(table.column_names)
    rows = table.to_pylist()
    if not rows:
        raise SuiteUnusable("the suite has no rows")
    if {"prompt", "choices", "answer"} <= columns:
        items = [
            Item(
                i,
                row["choices"][row["answer"]],
                prompt=row["prompt"],
                choices=tuple(row["choices"]),
                answer=row["answer"],
            )
            for i, row in enumerate(rows)
        ]
    elif {"prompt", "completion"} <= columns and "chosen" not in columns:
        items = [Item(i, row["completion"], prompt=row["prompt"]) for i, row in enumerate(rows)]
    elif "messages" in columns:
        items = [_chat_item(i, row) for i, row in enumerate(rows)]
    else:
        raise SuiteUnusable(
            "a suite needs sft (prompt, completion), chat (messages) or multiple_choice (prompt, choices, answer) rows;"
            f" it has {sorted(columns)}"
        )
    if max_items is not None and max_items < len(items):
        picked = sorted(random.Random(seed).sample(range(len(items)), max_items))
        items = [items[i] for i in picked]
    return items


def _chat_item(index: int, row: dict[str, Any]) -> Item:
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise SuiteUnusable(f"row {index}: a chat item ends with the assistant message it expects, after a question")
    return Item(index, messages[-1]["content"], messages=tuple(messages[:-1]))

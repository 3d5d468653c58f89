"""Exact match on the held-out split: for rows whose answer is short, does greedy decoding reproduce it exactly?"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from . import data

MAX_ROWS = 64


def exact_match(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    schema: str,
    rows: list[dict[str, Any]],
    max_answer_tokens: int,
) -> dict[str, float]:
    """`exact_match` (share of short-answer rows answered exactly, whitespace-trimmed) and `exact_match_rows`.

    Long answers are left out: exact string equality says little about a paragraph. At most MAX_ROWS rows are
    scored, so evaluation stays cheap next to training.
    """
    candidates = []
    for row in rows:
        case = data.prompted(tokenizer, schema, row)
        if case is None:
            continue
        if len(tokenizer(case.answer, add_special_tokens=False)["input_ids"]) <= max_answer_tokens:
            candidates.append(case)
    candidates = candidates[:MAX_ROWS]
    if not candidates:
        return {}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    try:
        with torch.no_grad():
            for case in candidates:
                prompt = torch.tensor([case.prompt_ids], device=device)
                output = model.generate(
                    input_ids=prompt,
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=max_answer_tokens + 1,
                    do_sample=False,
                    pad_token_id=data.pad_token_id(tokenizer),
                )
                answer = str(tokenizer.decode(output[0, prompt.shape[1] :], skip_special_tokens=True))
                hits += answer.strip() == case.answer.strip()
    finally:
        model.train(was_training)
    return {"exact_match": hits / len(candidates), "exact_match_rows": float(len(candidates))}

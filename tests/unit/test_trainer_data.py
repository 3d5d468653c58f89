"""Trainer data shaping without I/O: schema detection, the seeded held-out split, and best-fit-decreasing packing."""

import pytest
from modelops_trainer.data import IGNORE, Example, PackedCollator, detect_schema, pack, split_rows
from modelops_trainer.domain import JobSpecError


def example(length: int, prompt: int = 1) -> Example:
    return Example(list(range(length)), [IGNORE] * prompt + list(range(prompt, length)))


def test_schemas_are_told_apart_by_their_columns():
    assert detect_schema(["prompt", "completion"]) == "sft"
    assert detect_schema(["messages", "id"]) == "chat"
    assert detect_schema(["prompt", "chosen", "rejected"]) == "preference"
    with pytest.raises(JobSpecError, match="match no schema"):
        detect_schema(["text"])


def test_the_held_out_split_is_seeded_and_leaves_rows_to_train_on():
    rows = [{"i": i} for i in range(10)]
    train, held = split_rows(rows, 0.2, seed=1)
    assert len(held) == 2
    assert sorted(r["i"] for r in train + held) == list(range(10))
    assert split_rows(rows, 0.2, seed=1) == (train, held)
    assert split_rows(rows, 0.2, seed=2) != (train, held)
    assert split_rows(rows[:1], 0.5, seed=1) == (rows[:1], [])


def test_packing_fills_rows_best_fit_and_restarts_positions_per_example():
    examples = [example(n) for n in (60, 50, 40, 30, 20, 10, 10, 5)]
    rows = pack(examples, seq_len=64)
    assert sorted(len(r.input_ids) for r in rows) == [45, 60, 60, 60]  # 225 tokens in the fewest rows of 64
    assert sum(len(r.input_ids) for r in rows) == sum(len(e.input_ids) for e in examples)
    for row in rows:
        starts = [i for i, p in enumerate(row.position_ids) if p == 0]
        assert starts[0] == 0
        assert all(row.labels[s] == IGNORE for s in starts)


def test_the_collator_pads_to_the_longest_row_and_counts_only_real_tokens():
    collator = PackedCollator(pad_token_id=3)
    rows = pack([example(6), example(4)], seq_len=6)
    batch = collator(rows)
    assert batch["input_ids"].shape == (2, 6)
    assert batch["labels"][1, 4:].tolist() == [IGNORE, IGNORE]
    assert batch["input_ids"][1, 4:].tolist() == [3, 3]
    assert collator.tokens_seen == 10

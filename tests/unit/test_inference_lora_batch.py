"""Stacked batched LoRA (inference's lora_batch) against PEFT's own mixed-adapter batch: the same logits for rows of
adapters of different ranks and target modules, base rows among them, after a deletion, and PEFT's path kept for an
adapter that is not plain LoRA."""

from __future__ import annotations

import pytest
import torch
from modelops_inference.lora_batch import BatchedLora
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

ADAPTERS = {
    "a": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    "b": LoraConfig(r=16, lora_alpha=8, target_modules=["o_proj", "down_proj", "up_proj"], init_lora_weights=False),
    "c": LoraConfig(r=8, lora_alpha=32, target_modules="all-linear", use_rslora=True, init_lora_weights=False),
}
ROWS = ["a", None, "c", "b", "a", "c"]


def _model() -> PeftModel:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=97
    )
    names = iter(ADAPTERS)
    first = next(names)
    model = get_peft_model(LlamaForCausalLM(config), ADAPTERS[first], adapter_name=first)
    for name in names:
        model.add_adapter(name, ADAPTERS[name])
    return model.eval()


def _peft_logits(model: PeftModel, batched: BatchedLora, ids: torch.Tensor, rows: list[str | None]) -> torch.Tensor:
    batched.single()  # PEFT's own layers on again, as the backend switches them before PEFT's path
    with torch.inference_mode():
        return model(input_ids=ids, adapter_names=[name or "__base__" for name in rows]).logits


def _batched_logits(model: PeftModel, batched: BatchedLora, ids: torch.Tensor, rows: list[str | None]) -> torch.Tensor:
    with torch.inference_mode(), batched.rows(rows):
        return model(input_ids=ids).logits


def test_batched_rows_give_peft_mixed_batch_logits() -> None:
    model = _model()
    batched = BatchedLora(model)
    for name in ADAPTERS:
        batched.add(name)
    ids = torch.randint(0, 97, (len(ROWS), 7))
    expected = _peft_logits(model, batched, ids, ROWS)
    assert batched.usable
    assert torch.allclose(_batched_logits(model, batched, ids, ROWS), expected, atol=1e-5)
    # Every adapter changes its rows (the comparison would pass vacuously otherwise).
    base = _peft_logits(model, batched, ids, [None] * len(ROWS))
    assert all(not torch.allclose(expected[i], base[i]) for i, name in enumerate(ROWS) if name)
    # PEFT's own layers run again afterwards: one adapter as the active one.
    batched.single()
    model.set_adapter("b")
    with torch.inference_mode():
        single = model(input_ids=ids).logits
    assert torch.allclose(single, _batched_logits(model, batched, ids, ["b"] * len(ROWS)), atol=1e-5)


def test_a_deleted_adapter_frees_its_slot_for_the_next() -> None:
    model = _model()
    batched = BatchedLora(model)
    for name in ADAPTERS:
        batched.add(name)
    model.delete_adapter("b")
    batched.remove("b")
    model.add_adapter("d", LoraConfig(r=32, target_modules=["k_proj"], init_lora_weights=False))
    batched.add("d")
    assert sorted(batched.slots.values()) == [1, 2, 3]
    rows: list[str | None] = ["d", "a", None, "c"]
    ids = torch.randint(0, 97, (len(rows), 5))
    assert torch.allclose(
        _batched_logits(model, batched, ids, rows), _peft_logits(model, batched, ids, rows), atol=1e-5
    )


@pytest.mark.parametrize("variant", [{"use_dora": True}, {"lora_bias": True}])
def test_an_adapter_that_is_not_plain_lora_leaves_the_batch_to_peft(variant: dict[str, bool]) -> None:
    model = _model()
    batched = BatchedLora(model)
    for name in ADAPTERS:
        batched.add(name)
    model.add_adapter("odd", LoraConfig(r=4, target_modules=["q_proj"], **variant))
    batched.add("odd")
    assert not batched.usable
    model.delete_adapter("odd")
    batched.remove("odd")
    assert batched.usable

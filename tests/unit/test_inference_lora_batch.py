"""Stacked LoRA (inference's lora_batch) against PEFT loading the same saved adapters: the same logits for rows of
adapters of different ranks, scales and target modules, base rows among them, after a removal; adapters that are not
plain LoRA left to PEFT, in the backend's batches beside stacked ones."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from modelops_inference import lora_batch
from modelops_inference.backend import TransformersBackend
from modelops_inference.lora_batch import LoraStacks, read_plain
from modelops_trainer.base_model import build_base_model
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

ADAPTERS = {
    "a": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    "b": LoraConfig(
        r=16, lora_alpha=8, target_modules=["o_proj", "down_proj", "up_proj"], alpha_pattern={"up_proj": 64},
        init_lora_weights=False,
    ),
    "c": LoraConfig(r=8, lora_alpha=32, target_modules="all-linear", use_rslora=True, init_lora_weights=False),
    "d": LoraConfig(r=32, target_modules=["k_proj"], init_lora_weights=False),
}  # fmt: skip
ROWS: list[str | None] = ["a", None, "c", "b", "a", "c"]


def _base() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=97
    )
    return LlamaForCausalLM(config).eval()


def _save(base: torch.nn.Module, config: LoraConfig, directory: Path, seed: int = 1) -> Path:
    torch.manual_seed(seed)
    get_peft_model(copy.deepcopy(base), config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlamaForCausalLM, dict[str, Path]]:
    """The base model and each of ADAPTERS saved from it, as PEFT saves an adapter."""
    root, base = tmp_path_factory.mktemp("adapters"), _base()
    return base, {name: _save(base, config, root / name, seed) for seed, (name, config) in enumerate(ADAPTERS.items())}


def _peft_logits(base: torch.nn.Module, paths: dict[str, Path], ids: torch.Tensor, rows: list[str | None]) -> Any:
    names = iter(paths)
    first = next(names)
    model = PeftModel.from_pretrained(copy.deepcopy(base), paths[first], adapter_name=first)
    for name in names:
        model.load_adapter(paths[name], adapter_name=name)
    with torch.inference_mode():
        return model(input_ids=ids, adapter_names=[name or "__base__" for name in rows]).logits


def _stacked(base: torch.nn.Module, paths: dict[str, Path]) -> tuple[torch.nn.Module, LoraStacks]:
    model = copy.deepcopy(base)
    stacks = LoraStacks(model)
    for name, path in paths.items():
        pairs = read_plain(path, stacks.linears)
        assert pairs is not None
        stacks.add(name, pairs)
    return model, stacks


def _stacked_logits(model: torch.nn.Module, stacks: LoraStacks, ids: torch.Tensor, rows: list[str | None]) -> Any:
    with torch.inference_mode(), stacks.rows(rows):
        return model(input_ids=ids).logits


@pytest.mark.parametrize("kept", [True, False], ids=["gathered-kept", "gathered-each-pass"])
def test_stacked_rows_give_the_logits_peft_gives(
    kept: bool, saved: tuple[LlamaForCausalLM, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not kept:
        monkeypatch.setattr(lora_batch, "GATHERED_BYTES", 0)
    base, paths = saved
    paths = {name: paths[name] for name in "abc"}
    model, stacks = _stacked(base, paths)
    ids = torch.randint(0, 97, (len(ROWS), 7))
    expected = _peft_logits(base, paths, ids, ROWS)
    for _ in range(2):  # the second pass on the same rows, with their pairs kept or gathered again
        assert torch.allclose(_stacked_logits(model, stacks, ids, ROWS), expected, atol=1e-5)
    # Every adapter changes its rows (the comparison would pass vacuously otherwise), and nothing is left applied.
    plain = _stacked_logits(model, stacks, ids, [None] * len(ROWS))
    assert all(not torch.allclose(expected[i], plain[i]) for i, name in enumerate(ROWS) if name)
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids).logits, plain)
    # Every row of one adapter: the same as PEFT's active adapter.
    one = ["b"] * len(ROWS)
    assert torch.allclose(_stacked_logits(model, stacks, ids, one), _peft_logits(base, paths, ids, one), atol=1e-5)


def test_a_removed_adapter_frees_its_slot_for_the_next(saved: tuple[LlamaForCausalLM, dict[str, Path]]) -> None:
    base, paths = saved
    model, stacks = _stacked(base, {name: paths[name] for name in "abc"})
    rows: list[str | None] = ["b", "a", None, "c"]
    ids = torch.randint(0, 97, (len(rows), 5))
    _stacked_logits(model, stacks, ids, rows)
    stacks.remove("b")
    pairs = read_plain(paths["d"], stacks.linears)
    assert pairs is not None
    stacks.add("d", pairs)  # a higher rank than any before: the k_proj stacks are allocated at 32
    assert stacks.slots["d"] == 2  # b's: the same slots row by row as the pass before, with d's pairs in b's place
    rows = ["d", "a", None, "c"]
    expected = _peft_logits(base, {name: paths[name] for name in "acd"}, ids, rows)
    assert torch.allclose(_stacked_logits(model, stacks, ids, rows), expected, atol=1e-5)


@pytest.mark.parametrize(
    "variant",
    [
        {"use_dora": True},
        {"lora_bias": True},
        {"modules_to_save": ["lm_head"]},
        {"target_modules": ["embed_tokens", "q_proj"]},
    ],
)
def test_an_adapter_that_is_not_plain_lora_is_not_stacked(
    variant: dict[str, Any], saved: tuple[LlamaForCausalLM, dict[str, Path]], tmp_path: Path
) -> None:
    base, _ = saved
    path = _save(base, LoraConfig(**{"r": 4, "target_modules": ["q_proj"], **variant}), tmp_path)
    assert read_plain(path, LoraStacks(copy.deepcopy(base)).linears) is None


def test_an_unknown_config_field_or_pickled_weights_are_not_stacked(
    saved: tuple[LlamaForCausalLM, dict[str, Path]], tmp_path: Path
) -> None:
    base, paths = saved
    linears = LoraStacks(copy.deepcopy(base)).linears
    assert read_plain(paths["a"], linears) is not None
    config = json.loads((paths["a"] / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**config, "use_some_new_variant": True}))
    (tmp_path / "adapter_model.safetensors").write_bytes((paths["a"] / "adapter_model.safetensors").read_bytes())
    assert read_plain(tmp_path, linears) is None
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    assert read_plain(tmp_path, linears) is not None
    (tmp_path / "adapter_model.safetensors").rename(tmp_path / "adapter_model.bin")
    assert read_plain(tmp_path, linears) is None


def test_the_backend_batches_a_peft_adapter_with_stacked_ones(tmp_path: Path) -> None:
    """An adapter with LoRA biases (PEFT's) in one batch with plain ones (stacked), equal to PEFT running them all;
    after PEFT's last adapter is unloaded, the stacked ones still apply."""
    build_base_model(tmp_path / "base", 0)
    backend = TransformersBackend("base", tmp_path / "base", torch.device("cpu"), max_adapters=4)
    base = copy.deepcopy(backend._base)
    configs = {
        "plain-1": ADAPTERS["a"],
        "biased": LoraConfig(r=4, target_modules=["q_proj", "o_proj"], lora_bias=True, init_lora_weights=False),
        "plain-2": ADAPTERS["c"],
    }
    paths = {name: _save(base, config, tmp_path / name, seed) for seed, (name, config) in enumerate(configs.items())}

    async def load() -> None:
        for name, path in paths.items():
            await backend.acquire_adapter(name, path)
            backend.release_adapter(name)

    asyncio.run(load())
    assert backend._peft == {"biased"}
    assert set(backend._stacks.slots) == {"plain-1", "plain-2"}
    rows: list[str | None] = ["plain-1", "biased", None, "plain-2", "biased"]
    ids = torch.randint(0, base.config.vocab_size, (len(rows), 6))
    expected = _peft_logits(base, paths, ids, rows)
    for batch in ([0, 1, 2, 3, 4], [1, 4], [3, 2]):  # mixed; PEFT's alone; stacked alone (PEFT's layers off)
        assert torch.allclose(_rows(backend, ids[batch], [rows[i] for i in batch]), expected[batch], atol=1e-5)
    asyncio.run(backend.remove_adapter("biased"))
    assert backend._model is backend._base
    assert torch.allclose(_rows(backend, ids[:1], ["plain-1"]), expected[:1], atol=1e-5)
    asyncio.run(backend.close())


def _rows(backend: TransformersBackend, ids: torch.Tensor, rows: list[str | None]) -> torch.Tensor:
    with torch.inference_mode(), backend._adapter_rows(rows) as arguments:
        logits: torch.Tensor = backend._model(input_ids=ids, **arguments).logits
    return logits

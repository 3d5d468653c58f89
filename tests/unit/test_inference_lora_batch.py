"""Stacked LoRA and DoRA (inference's lora_batch) against PEFT running the same saved adapters one at a time: the same
logits for rows of adapters of different ranks, scales, variants and target modules, base rows among them, after a
removal; adapters that cannot be stacked left to PEFT, in the backend's batches beside stacked ones."""

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
from modelops_inference.lora_batch import LoraStacks, read_stackable
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
    "e": LoraConfig(r=4, target_modules=["q_proj", "down_proj"], use_dora=True, init_lora_weights=False),
}  # fmt: skip
ROWS: list[str | None] = ["a", None, "c", "b", "e", "a", "c", "e"]


def _base() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=97,
        attention_bias=True,  # DoRA scales a layer's output without its bias
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):  # initialised to zero, where a wrong handling of them would not show
                parameter.normal_()
    return model


def _save(base: torch.nn.Module, config: LoraConfig, directory: Path, seed: int = 1) -> Path:
    torch.manual_seed(seed)
    model = get_peft_model(copy.deepcopy(base), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_magnitude_vector" in name:  # DoRA starts at the adapted weight's norms: move off them, as training
                parameter.mul_(torch.rand_like(parameter) + 0.5)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlamaForCausalLM, dict[str, Path]]:
    """The base model and each of ADAPTERS saved from it, as PEFT saves an adapter."""
    root, base = tmp_path_factory.mktemp("adapters"), _base()
    return base, {name: _save(base, config, root / name, seed) for seed, (name, config) in enumerate(ADAPTERS.items())}


def _peft_logits(base: torch.nn.Module, paths: dict[str, Path], ids: torch.Tensor, rows: list[str | None]) -> Any:
    """Each row's logits from PEFT with that row's adapter active (or with adapters disabled, for None)."""
    names = iter(paths)
    first = next(names)
    model = PeftModel.from_pretrained(copy.deepcopy(base), paths[first], adapter_name=first)
    for name in names:
        model.load_adapter(paths[name], adapter_name=name)
    logits = torch.zeros(*ids.shape, base.config.vocab_size)
    with torch.inference_mode():
        for name in set(rows):
            index = [i for i, row in enumerate(rows) if row == name]
            if name is None:
                with model.disable_adapter():
                    logits[index] = model(input_ids=ids[index]).logits
            else:
                model.set_adapter(name)
                logits[index] = model(input_ids=ids[index]).logits
    return logits


def _stacked(base: torch.nn.Module, paths: dict[str, Path]) -> tuple[torch.nn.Module, LoraStacks]:
    model = copy.deepcopy(base)
    stacks = LoraStacks(model)
    for name, path in paths.items():
        layers = read_stackable(path, stacks.linears)
        assert layers is not None
        stacks.add(name, layers)
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
    paths = {name: paths[name] for name in "abce"}
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
    for name in "be":  # every row of one adapter
        one: list[str | None] = [name] * len(ROWS)
        assert torch.allclose(_stacked_logits(model, stacks, ids, one), _peft_logits(base, paths, ids, one), atol=1e-5)


def test_a_removed_adapter_frees_its_slot_for_the_next(saved: tuple[LlamaForCausalLM, dict[str, Path]]) -> None:
    base, paths = saved
    model, stacks = _stacked(base, {name: paths[name] for name in "abc"})
    rows: list[str | None] = ["b", "a", None, "c"]
    ids = torch.randint(0, 97, (len(rows), 5))
    _stacked_logits(model, stacks, ids, rows)
    stacks.remove("b")
    layers = read_stackable(paths["d"], stacks.linears)
    assert layers is not None
    stacks.add("d", layers)  # a higher rank than any before: the k_proj stacks are allocated at 32
    assert stacks.slots["d"] == 2  # b's: the same slots row by row as the pass before, with d's pairs in b's place
    rows = ["d", "a", None, "c"]
    expected = _peft_logits(base, {name: paths[name] for name in "acd"}, ids, rows)
    assert torch.allclose(_stacked_logits(model, stacks, ids, rows), expected, atol=1e-5)


def test_a_load_beside_a_batch_keeps_its_gathered_pairs(saved: tuple[LlamaForCausalLM, dict[str, Path]]) -> None:
    base, paths = saved
    model, stacks = _stacked(base, {name: paths[name] for name in "abc"})
    rows: list[str | None] = ["a", "c", None]
    ids = torch.randint(0, 97, (len(rows), 5))
    _stacked_logits(model, stacks, ids, rows)
    kept = dict(stacks._gathered)
    layers = read_stackable(paths["d"], stacks.linears)
    assert layers is not None
    stacks.add("d", layers)  # a slot no row of the batch takes, and stacks of a new layer (k_proj)
    stacks.remove("b")
    assert kept
    assert stacks._gathered.keys() == kept.keys()
    assert all(stacks._gathered[layer] is pair for layer, pair in kept.items())
    expected = _peft_logits(base, {name: paths[name] for name in "acd"}, ids, rows)
    assert torch.allclose(_stacked_logits(model, stacks, ids, rows), expected, atol=1e-5)
    rows = ["d", "c", "a"]
    expected = _peft_logits(base, {name: paths[name] for name in "acd"}, ids, rows)
    assert torch.allclose(_stacked_logits(model, stacks, ids, rows), expected, atol=1e-5)


@pytest.mark.parametrize(
    "variant",
    [
        {"lora_bias": True},
        {"modules_to_save": ["lm_head"]},
        {"target_modules": ["embed_tokens", "q_proj"]},
    ],
)
def test_an_adapter_of_another_kind_is_not_stacked(
    variant: dict[str, Any], saved: tuple[LlamaForCausalLM, dict[str, Path]], tmp_path: Path
) -> None:
    base, _ = saved
    path = _save(base, LoraConfig(**{"r": 4, "target_modules": ["q_proj"], **variant}), tmp_path)
    assert read_stackable(path, LoraStacks(copy.deepcopy(base)).linears) is None


def test_an_unknown_config_field_or_pickled_weights_are_not_stacked(
    saved: tuple[LlamaForCausalLM, dict[str, Path]], tmp_path: Path
) -> None:
    base, paths = saved
    linears = LoraStacks(copy.deepcopy(base)).linears
    assert read_stackable(paths["a"], linears) is not None
    config = json.loads((paths["a"] / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**config, "use_some_new_variant": True}))
    (tmp_path / "adapter_model.safetensors").write_bytes((paths["a"] / "adapter_model.safetensors").read_bytes())
    assert read_stackable(tmp_path, linears) is None
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    assert read_stackable(tmp_path, linears) is not None
    (tmp_path / "adapter_model.safetensors").rename(tmp_path / "adapter_model.bin")
    assert read_stackable(tmp_path, linears) is None


def test_the_backend_batches_a_peft_adapter_with_stacked_ones(tmp_path: Path) -> None:
    """An adapter with LoRA biases (PEFT's) in one batch with a LoRA and a DoRA one (stacked), equal to PEFT running
    each; after PEFT's last adapter is unloaded, the stacked ones still apply."""
    build_base_model(tmp_path / "base", 0)
    backend = TransformersBackend("base", tmp_path / "base", torch.device("cpu"), max_adapters=4)
    base = copy.deepcopy(backend._base)
    configs = {
        "lora": ADAPTERS["a"],
        "biased": LoraConfig(r=4, target_modules=["q_proj", "o_proj"], lora_bias=True, init_lora_weights=False),
        "dora": ADAPTERS["e"],
    }
    paths = {name: _save(base, config, tmp_path / name, seed) for seed, (name, config) in enumerate(configs.items())}

    async def load() -> None:
        for name, path in paths.items():
            await backend.acquire_adapter(name, path)
            backend.release_adapter(name)

    asyncio.run(load())
    assert backend._peft == {"biased"}
    assert set(backend._stacks.slots) == {"lora", "dora"}
    rows: list[str | None] = ["lora", "biased", None, "dora", "biased"]
    ids = torch.randint(0, base.config.vocab_size, (len(rows), 6))
    expected = _peft_logits(base, paths, ids, rows)
    for batch in ([0, 1, 2, 3, 4], [1, 4], [3, 2]):  # mixed; PEFT's alone; stacked alone (PEFT's layers off)
        assert torch.allclose(_rows(backend, ids[batch], [rows[i] for i in batch]), expected[batch], atol=1e-5)
    asyncio.run(backend.remove_adapter("biased"))
    assert backend._model is backend._base
    assert torch.allclose(_rows(backend, ids[:1], ["lora"]), expected[:1], atol=1e-5)
    asyncio.run(backend.close())


def _rows(backend: TransformersBackend, ids: torch.Tensor, rows: list[str | None]) -> torch.Tensor:
    with torch.inference_mode(), backend._adapter_rows(rows) as arguments:
        logits: torch.Tensor = backend._model(input_ids=ids, **arguments).logits
    return logits

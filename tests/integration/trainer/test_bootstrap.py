"""The bootstrap base model: the same seed gives byte-identical files (hence the same artifact id), another seed
other weights; the tokenizer has 8000 entries and a chat template that renders conversations incrementally."""

from __future__ import annotations

from pathlib import Path

from modelops_shared.artifact_upload import digest_directory
from modelops_trainer.base_model import build_base_model
from transformers import AutoConfig, AutoTokenizer


def test_the_same_seed_builds_the_same_model_and_another_seed_another(tmp_path: Path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        build_base_model(tmp_path / name, seed)
    a, b, c = (digest_directory(tmp_path / name) for name in "abc")
    assert a == b
    assert {d.path: d.sha256 for d in a}["model.safetensors"] != {d.path: d.sha256 for d in c}["model.safetensors"]

    config = AutoConfig.from_pretrained(tmp_path / "a")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (256, 4, 4)
    assert config.vocab_size == 8000
    assert config.intermediate_size % 256 == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert len(tokenizer) == 8000
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    prompt = tokenizer.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    assert tokenizer.apply_chat_template(chat, tokenize=False).startswith(prompt)

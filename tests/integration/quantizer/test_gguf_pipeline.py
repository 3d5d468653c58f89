"""The GGUF our pipeline writes is the model it was made from: llama.cpp's greedy text from the F16 conversion of
SmolLM2 equals transformers' greedy text from the Hugging Face directory, token for token, on most prompts; and every
GGUF type the quantizer offers comes out of llama.cpp's quantizer as a file llama.cpp loads and runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from llama_cpp import Llama
from modelops_contracts import QuantizationFormat
from modelops_quantizer import toolchain
from modelops_trainer.gguf_import import GgufInfo
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three primary colours are",
    "Water boils at a temperature of",
]
NEW_TOKENS = 12


def llama_cpp_greedy(llm: Llama, prompt: list[int]) -> list[int]:
    llm.reset()
    llm.eval(prompt)
    generated: list[int] = []
    for _ in range(NEW_TOKENS):
        generated.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(generated[-1:])
    return generated


@pytest.fixture(scope="module")
def f16(smollm2_dir: tuple[GgufInfo, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    gguf = tmp_path_factory.mktemp("f16") / "F16.gguf"
    toolchain.convert_model(smollm2_dir[1], gguf)
    return gguf


def test_f16_gguf_generates_what_the_hugging_face_model_generates(
    smollm2_dir: tuple[GgufInfo, Path], f16: Path
) -> None:
    directory, gguf = smollm2_dir[1], f16
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    llm = Llama(model_path=str(gguf), n_ctx=128, logits_all=True, verbose=False)
    same = 0
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        with torch.no_grad():
            output = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False)
        reference = output[0, len(ids) :].tolist()  # may stop early, at EOS
        same += llama_cpp_greedy(llm, ids)[: len(reference)] == reference
    llm.close()
    assert same >= len(PROMPTS) - 1, f"{same} of {len(PROMPTS)} prompts gave the same greedy tokens"


@pytest.mark.parametrize("fmt", list(toolchain.QUANTIZED_FTYPES))
def test_every_gguf_type_is_made_by_llama_cpp_and_runs(f16: Path, fmt: QuantizationFormat, tmp_path: Path) -> None:
    output = tmp_path / f"{fmt}.gguf"
    toolchain.quantize(f16, output, fmt, threads=2)
    assert output.stat().st_size < f16.stat().st_size * 0.6
    llm = Llama(model_path=str(output), n_ctx=64, verbose=False)
    text = llm.create_completion("The capital of France is", max_tokens=4, temperature=0)["choices"][0]["text"]
    llm.close()
    assert text.strip()
    # Q4_0 costs a 135M model enough to lose this answer (" capitalised as it"): why the gateway warns about it.
    assert "Paris" in text or fmt is QuantizationFormat.Q4_0, (fmt, text)

"""DeepSpeed ZeRO-2 and ZeRO-3 on CUDA through transformers' integration (skipped without CUDA and deepspeed): LoRA on
SmolLM2 with every GPU (at most 2) as a rank, under plain DDP, ZeRO-2 and ZeRO-3. Each follows DDP's loss curve within
bf16 rounding, and the adapter each saves (gathered from the shards under ZeRO-3) loads and moves the model as DDP's
does. Run by services/trainer/scripts/gpu_distributed.sh on a GPU machine; prints tokens/s per stage."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from modelops_contracts import AdapterSpec, Hyperparameters
from modelops_trainer import distributed, engine
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from .support import Recorder, arithmetic_rows

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and importlib.util.find_spec("deepspeed")), reason="needs CUDA and deepspeed"
)
STEPS = 20


def train(base: Path, out: Path, zero_stage: int) -> tuple[engine.Result, Recorder]:
    recorder = Recorder()
    plan = engine.Plan(
        method="sft",
        schema="sft",
        base_model=base,
        rows=arithmetic_rows(2000, seed=5),
        hyperparameters=Hyperparameters(max_steps=STEPS, batch_size=8, seq_len=128, learning_rate=2e-4, seed=7),
        adapter=AdapterSpec(dropout=0.0),
        quantization="none",
        eval_split=0.05,
        output_dir=out,
        checkpoint_every=STEPS,
        progress_every_steps=1,
        progress_every_s=1e9,
        ranks=min(2, torch.cuda.device_count()),
        zero_stage=zero_stage,
    )
    return distributed.launch(plan, recorder), recorder


def logits(base: Path, adapter: Path) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = tokenizer("Question: what is 2 plus 3? Answer:", return_tensors="pt")["input_ids"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_zero_2_and_3_follow_plain_ddp(smollm2_dir, tmp_path):
    _, base = smollm2_dir
    runs = {stage: train(base, tmp_path / f"zero{stage}", stage) for stage in (0, 2, 3)}
    plain, plain_recorder = runs[0]
    assert plain.adapter_dir is not None
    reference = logits(base, plain.adapter_dir)
    for stage, (result, recorder) in runs.items():
        rates = sorted(recorder.rates)
        print(f"ZeRO-{stage}: {rates[len(rates) // 2]:.0f} tokens/s (median over steps)")
        assert sorted(recorder.losses) == list(range(1, STEPS + 1))
        for step, loss in plain_recorder.losses.items():
            assert recorder.losses[step] == pytest.approx(loss, rel=5e-2), (stage, step)
        assert result.adapter_dir is not None
        assert torch.allclose(logits(base, result.adapter_dir), reference, atol=0.25), stage

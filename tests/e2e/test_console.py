"""The web console in a real browser (Debian's chromium, driven by Playwright's Python API): a developer signs in,
submits a training job from the Jobs page and watches its timeline fill in across services; the topics, artifact,
deployment and dead-letter pages show what the stack did. And one job is one trace: the spans every service exported
(over OTLP, to the test's receiver) share the trace id of the gateway's POST. Screenshots of each page are kept in
.test-artifacts/console/."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from confluent_kafka import Producer
from modelops_sdk import Client
from otlp import SpanSink
from platforms import ROOT, Platform
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MODELOPS = Path(sys.executable).with_name("modelops")
SHOTS = ROOT / ".test-artifacts" / "console"
WAIT_MS = 240_000  # a tiny job on 2 cores, from queued to its adapter registered
ROWS = [
    {"messages": [{"role": "user", "content": f"Echo {word}"}, {"role": "assistant", "content": word}]}
    for word in ("red", "green", "blue", "amber", "violet", "cyan", "white", "black") * 2
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("the console's browser test needs chromium: apt-get install chromium (.ci/run does)")
        pytest.skip("no chromium here: apt-get install chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # As root (CI) chromium's sandbox cannot start; the pages it opens are our own.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def prepared(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tiny base model, a chat dataset, and a developer's key."""
    platform.run(sys.executable, "-m", "modelops_trainer", "bootstrap-base", "--wait")
    client = Client(platform.url, api_key=platform.key)
    rows = tmp_path_factory.mktemp("console") / "echo.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    dataset = client.datasets.upload("console-echo", "chat", rows)
    developer = client.api_keys.create("console-dev", "developer")
    assert developer.key is not None
    return {"dataset": dataset.name, "developer": developer.key}


@pytest.fixture(scope="module")
def fine_tuned(platform: Platform, prepared: dict[str, str]) -> dict[str, str]:
    """A job through OpenAI's fine-tuning API, whose adapter the gateway deploys when it succeeds, and one chat."""
    ai = openai.OpenAI(base_url=f"{platform.url}/v1", api_key=platform.key, timeout=60)
    uploaded = ai.files.create(
        file=("echo.jsonl", "".join(json.dumps(row) + "\n" for row in ROWS).encode()), purpose="fine-tune"
    )
    job = ai.fine_tuning.jobs.create(
        model="tiny-llama", training_file=uploaded.id, hyperparameters={"n_epochs": 1, "batch_size": 4}, suffix="trace"
    )
    deadline = time.monotonic() + 600
    while (job := ai.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(1)
    assert job.status == "succeeded", job.error
    while job.fine_tuned_model not in {model.id for model in ai.models.list()}:
        assert time.monotonic() < deadline + 180, f"{job.fine_tuned_model} is not served"
        time.sleep(0.5)
    ai.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "Echo red"}], max_tokens=4
    )
    return {"job": job.id, "model": job.fine_tuned_model}


@pytest.mark.timeout(900)
def test_one_fine_tuning_job_is_one_trace_from_the_gateways_post_to_inferences_deploy(
    platform: Platform, spans: SpanSink, fine_tuned: dict[str, str]
):
    api = httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {platform.key}"}, timeout=30)
    deadline = time.monotonic() + 60
    while True:  # the console's recorder indexes the deploy's messages moments after they are published
        flow = api.get(f"/v1/console/flows/{fine_tuned['job']}").json()
        services = {hop["service"] for hop in flow.get("hops", [])}
        if {"gateway", "trainer", "registry", "inference"} <= services or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {"gateway", "trainer", "registry", "inference"} <= services, flow
    assert len(flow["trace_ids"]) == 1, flow["trace_ids"]  # every message of the job carries the same trace
    trace_id = flow["trace_ids"][0]
    types = [hop["type"] for hop in flow["hops"]]
    for event in (
        "modelops.training.start.v1",
        "modelops.training.completed.v1",
        "modelops.artifact.registered.v1",
        "modelops.deployment.deploy.v1",
        "modelops.deployment.ready.v1",
    ):
        assert event in types, types

    # The spans: exported in batches every few seconds, so the last ones may still be on their way.
    expected = {
        ("gateway", "POST /v1/fine_tuning/jobs"),
        ("trainer", "training.commands.v1 process"),
        ("registry", "registry ArtifactRegistered"),
        ("inference", "inference Deploy"),
    }
    deadline = time.monotonic() + 60
    while True:
        traced = [span for span in spans.spans() if span.trace_id == trace_id]
        names = {(span.service, span.name) for span in traced}
        if expected <= names or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert expected <= names, sorted(expected - names)
    roots = [span for span in traced if not span.parent_id]
    assert [(root.service, root.name) for root in roots] == [("gateway", "POST /v1/fine_tuning/jobs")]

    # The same flow in the terminal.
    cli = [str(MODELOPS), "--url", platform.url, "--api-key", platform.key, "console"]
    printed = json.loads(platform.run(*cli, "flow", fine_tuned["job"], "--json").stdout)
    assert printed["trace_ids"] == [trace_id]
    assert [hop["type"] for hop in printed["hops"]][: len(types)] == types
    listed = json.loads(platform.run(*cli, "jobs", "--kind", "training", "--json").stdout)
    assert fine_tuned["job"] in {job["id"] for job in listed}


@pytest.mark.timeout(900)
def test_a_developer_submits_a_job_in_the_console_and_follows_it_across_services_and_topics(
    platform: Platform, browser: Browser, prepared: dict[str, str], fine_tuned: dict[str, str]
):
    page = _signed_in(browser, platform, prepared["developer"])
    expect(page.locator("#who")).to_contain_text("console-dev · developer")
    expect(page.get_by_role("link", name="Dead letters")).to_be_hidden()  # an admin's page

    page.fill("input[name=base_model]", "tiny-llama")
    page.fill("input[name=dataset]", prepared["dataset"])
    page.fill("input[name=max_steps]", "4")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r".*/ui/#/jobs/[A-Za-z0-9._-]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("modelops.training.start.v1")
    expect(timeline).to_contain_text("modelops.training.started.v1", timeout=WAIT_MS)
    expect(timeline).to_contain_text("modelops.training.completed.v1", timeout=WAIT_MS)
    expect(timeline).to_contain_text("modelops.artifact.registered.v1", timeout=WAIT_MS)
    expect(page.locator("#job-status")).to_contain_text("completed")
    for service in ("gateway", "trainer", "registry"):
        expect(page.get_by_role("img", name="timeline lanes")).to_contain_text(service)
    _shot(page, "job")

    # The fine-tuning job's flow reaches inference: the gateway deployed its adapter when it succeeded.
    page.goto(f"{platform.url}/ui/#/jobs/{fine_tuned['job']}")
    expect(page.locator("#timeline")).to_contain_text("modelops.deployment.ready.v1")
    lanes = page.get_by_role("img", name="timeline lanes")
    for service in ("gateway", "trainer", "registry", "inference"):
        expect(lanes).to_contain_text(service)
    _shot(page, "job-deployed")

    page.goto(f"{platform.url}/ui/#/jobs")
    expect(page.locator("#jobs")).to_contain_text(job_id)
    expect(page.locator("#jobs")).to_contain_text(fine_tuned["job"])
    _shot(page, "jobs")

    page.goto(f"{platform.url}/ui/#/topics")
    expect(page.locator("#groups")).to_contain_text("trainer")  # the trainers' group, with its lag
    expect(page.locator("main")).to_contain_text("training.commands.v1")
    _shot(page, "topics")

    adapter = Client(platform.url, api_key=platform.key).jobs.show(job_id).adapter_artifact_id
    page.goto(f"{platform.url}/ui/#/artifacts/{adapter}")
    expect(page.locator("#signature")).to_contain_text("verified")
    lineage = page.locator("#lineage")
    expect(lineage).to_contain_text("tiny-llama")  # its base model, drawn as a box linked to it
    expect(lineage).to_contain_text(prepared["dataset"])
    _shot(page, "artifact")

    page.goto(f"{platform.url}/ui/#/deployments")
    expect(page.locator("main")).to_contain_text(fine_tuned["model"])
    _shot(page, "deployments")
    deployment = _deployment_of(platform, fine_tuned["model"])
    page.get_by_role("link", name=deployment).click()
    expect(page.get_by_role("heading", name="Deployment")).to_contain_text(deployment)
    expect(page.locator("#serving")).to_contain_text(fine_tuned["model"])  # the chat it answered, by model
    _shot(page, "deployment")


@pytest.mark.timeout(300)
def test_an_admin_sees_a_dead_letter_with_its_error_and_replays_it(platform: Platform, browser: Browser):
    bootstrap = platform.env["MODELOPS_KAFKA_BOOTSTRAP"]
    poison = Producer({"bootstrap.servers": bootstrap})
    poison.produce("training.events.v1", key=b"not-a-job", value=b"\xff not a CloudEvent")
    assert poison.flush(10) == 0
    del poison  # librdkafka would go on reconnecting (and logging) after the stack stops

    page = _signed_in(browser, platform, platform.key)
    page.get_by_role("link", name="Dead letters").click()
    letters = page.locator("main table")
    expect(letters).to_contain_text("training.events.v1", timeout=60_000)  # parked by the gateway's consumer
    expect(letters).to_contain_text("EnvelopeError")
    _shot(page, "dead-letters")
    page.get_by_role("button", name="Replay").first.click()
    expect(page.locator("main")).to_contain_text("dead letter(s) of training.events.v1 replayed")


def _signed_in(browser: Browser, platform: Platform, key: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{platform.url}/ui/")
    page.fill("input[name=api-key]", key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible()
    assert not errors, errors
    return page


def _deployment_of(platform: Platform, model: str) -> str:
    deployments = httpx.get(
        f"{platform.url}/v1/deployments", headers={"Authorization": f"Bearer {platform.key}"}, timeout=30
    ).json()
    return next(d["name"] for d in deployments if model in d["models"])


def _shot(page: Page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

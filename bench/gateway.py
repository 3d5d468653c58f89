"""Gateway benchmark: training-job submissions per second, ours against the same work done the plain FastAPI way.

Ours: `POST /v1/jobs/training` on a gateway process — API key lookup, Redis rate limit, body validation, the base
model and dataset looked up in a registry process over HTTP, the job row, its first event and the StartTraining
command in one transaction, published by the outbox relay. Twice: with the registry cache as shipped (a listing
reused for MODELOPS_GATEWAY_REGISTRY_CACHE_S, 2 s) and with it off (0: a registry lookup per submission).
Baseline: what a skilled FastAPI user writes for that request — a pydantic model of the body, the API key's sha256
looked up in Postgres, the job row and an outbox row in one transaction (asyncpg pool), 202 — in a schema of its own
in the same embedded Postgres. The baseline publishes nothing to Kafka; ours is also timed until its outbox drained.

Every server is one uvicorn process, as the gateway runs, and traced as compose/ and k8s/ configure it: every request
sampled, spans exported over OTLP/HTTP (MODELOPS_OTLP_ENDPOINT) to a sink process; the baseline has the same
FastAPI instrumentation and exporter. The load comes from `wrk` (`apt-get install wrk`) when it is on PATH, else
from a Python process of its own, never from the process that measures. Rounds interleave the three sides, so that
other load on the machine weighs on all alike; each figure is the median (min-max) of the rounds.

    python bench/gateway.py [--concurrency 16] [--duration 10] [--rounds 3] [--python-load]

Target (issue #4): ours ≥ 0.3 × baseline requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from figures import spread
from isolated_stack import START_TIMEOUT_S, isolated_stack, process
from modelops_contracts import DatasetSchema, DatasetVersionCreated
from modelops_gateway.settings import GatewaySettings
from modelops_shared.bus import Bus
from modelops_shared.devstack import free_port
from modelops_shared.settings import Settings
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from pydantic import BaseModel, Field

HERE = Path(__file__).parent
PATH = "/v1/jobs/training"
WARM_S = 1  # an unmeasured round per side first: connections, pools and caches
DATASET = "bench-chat"
BODY = {
    "base_model": "bench-llama",
    "dataset": DATASET,
    "method": "sft",
    "adapter": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
    "quantization": "none",
    "hyperparameters": {"max_steps": 100, "learning_rate": 2e-4, "batch_size": 8, "seq_len": 256, "seed": 1},
    "eval_split": 0.1,
}
BASELINE_SCHEMA = "bench_baseline"
BASELINE_TABLES = f"""
CREATE SCHEMA "{BASELINE_SCHEMA}";
CREATE TABLE "{BASELINE_SCHEMA}".api_keys (
    id text PRIMARY KEY, name text NOT NULL, secret_sha256 text NOT NULL UNIQUE, revoked_at timestamptz
);
CREATE TABLE "{BASELINE_SCHEMA}".jobs (
    id text PRIMARY KEY, status text NOT NULL, submitted_by text NOT NULL, base_model text NOT NULL,
    dataset text NOT NULL, spec jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE "{BASELINE_SCHEMA}".outbox (
    id bigserial PRIMARY KEY, topic text NOT NULL, key bytea NOT NULL, value bytea NOT NULL, headers jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


# --- the baseline, run by uvicorn in its own process (`gateway:baseline_app`) ------------------------------------


class Adapter(BaseModel):
    r: int = Field(16, ge=1, le=512)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class Hyperparameters(BaseModel):
    max_steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    batch_size: int = Field(8, ge=1, le=1024)
    seq_len: int = Field(1024, ge=16)
    seed: int = 0


class TrainingJob(BaseModel):
    base_model: str = Field(min_length=1, max_length=200)
    dataset: str = Field(min_length=1, max_length=200)
    dataset_version: int | None = Field(None, ge=0)
    method: Literal["sft", "dpo"] = "sft"
    adapter: Adapter = Adapter()
    quantization: Literal["none", "nf4"] = "none"
    hyperparameters: Hyperparameters
    eval_split: float = Field(0.1, ge=0.0, lt=1.0)


BEARER = HTTPBearer()


async def owner(request: Request, credentials: Annotated[HTTPAuthorizationCredentials, Depends(BEARER)]) -> str:
    """The baseline's API key check: the name of the live key whose sha256 the bearer token has."""
    digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
    name: str | None = await request.app.state.pool.fetchval(
        "SELECT name FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL", digest
    )
    if name is None:
        raise HTTPException(401, "unknown API key")
    return name


def baseline_app() -> FastAPI:
    """The same request done the plain way: validate, look the key up, job and outbox row in one transaction."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            os.environ["MODELOPS_DATABASE_URL"],
            min_size=1,
            max_size=Settings.model_fields["database_pool_max"].default,  # as many connections as the gateway's
            server_settings={"search_path": BASELINE_SCHEMA},
        )
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post(PATH, status_code=202)
    async def submit(job: TrainingJob, by: Annotated[str, Depends(owner)], request: Request) -> dict[str, str]:
        job_id = f"job-{uuid.uuid4().hex}"
        spec = job.model_dump_json()
        trace_headers: dict[str, str] = {}
        propagate.inject(trace_headers)  # the command carries the request's trace, as ours does
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO jobs (id, status, submitted_by, base_model, dataset, spec)"
                " VALUES ($1, 'queued', $2, $3, $4, $5::jsonb)",
                job_id,
                by,
                job.base_model,
                job.dataset,
                spec,
            )
            await conn.execute(
                "INSERT INTO outbox (topic, key, value, headers) VALUES ('training.commands.v1', $1, $2, $3::jsonb)",
                job_id.encode(),
                spec.encode(),
                json.dumps(trace_headers),
            )
        return {"id": job_id, "status": "queued"}

    endpoint = os.environ.get("MODELOPS_OTLP_ENDPOINT")
    if endpoint:  # as configure_tracing does it for ours: every trace sampled, spans batched to the endpoint
        provider = TracerProvider(
            resource=Resource.create({"service.name": "bench-baseline"}), sampler=ParentBased(TraceIdRatioBased(1.0))
        )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app


# --- processes the benchmark starts: the OTLP sink and the Python load generator ----------------------------------


def otlp_sink(port: int) -> None:
    """Stands in for the collector: 200 to every OTLP/HTTP export, kept nowhere; a GET answers the count per path."""
    received: Counter[str] = Counter()

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the exporters keep their connection

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received[self.path] += 1
            self._answer(b"", "application/x-protobuf")  # an empty Export*ServiceResponse

        def do_GET(self) -> None:
            self._answer(json.dumps(received).encode(), "application/json")

        def _answer(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


def drive(port: int, key: str, concurrency: int, duration: int) -> None:
    """The load without wrk: `concurrency` keep-alive connections posting back to back for `duration` seconds, on
    bare asyncio streams (an HTTP client library would cost more than the servers it measures); prints its figures
    as JSON."""
    body = json.dumps(BODY).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    latencies: list[float] = []
    failures: list[str] = []

    async def connection(deadline: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                answer = await reader.readexactly(int(fields["content-length"]))
                latencies.append((time.perf_counter() - started) * 1000)
                if lines[0].split(" ")[1] != "202":
                    failures.append(f"{lines[0]}: {answer.decode(errors='replace')}")
        finally:
            writer.close()

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(connection(started + duration) for _ in range(concurrency)))
        return time.perf_counter() - started

    seconds = asyncio.run(run())
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98] if len(latencies) > 1 else latencies[0]
    figures = {"requests": len(latencies), "seconds": seconds, "p50_ms": statistics.median(latencies)}
    print(json.dumps({**figures, "p99_ms": p99, "failures": len(failures), "failure": failures[:1]}))


@dataclass(frozen=True)
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


async def _output(*args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, env=env)
    out, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{args[0]} exited with {proc.returncode}: {out.decode()}")
    return out.decode()


async def wrk(url: str, key: str, concurrency: int, duration: int) -> Load:
    """One wrk run (one thread: it outruns any Python server on one core); fails on any answer but 2xx."""
    script = (
        f'wrk.method = "POST"\nwrk.body = [==[{json.dumps(BODY)}]==]\n'
        f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(script)
        file.flush()
        args = ["-t1", f"-c{concurrency}", f"-d{duration}s", "--timeout", "30s", "--latency", "-s", file.name]
        out = await _output("wrk", *args, url + PATH)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    done = re.search(rf"(\d+) requests in {_TIME}", out)
    p50 = re.search(rf"^\s+50(?:\.0+)?%\s+{_TIME}\s*$", out, re.MULTILINE)
    p99 = re.search(rf"^\s+99(?:\.0+)?%\s+{_TIME}\s*$", out, re.MULTILINE)
    if errors or not (done and p50 and p99):
        raise RuntimeError(f"wrk against {url}: {await _one_answer(url, key)}\n{out}")
    return Load(int(done[1]), _ms(done[2], done[3]) / 1000, _ms(p50[1], p50[2]), _ms(p99[1], p99[2]))


async def python_load(url: str, key: str, concurrency: int, duration: int) -> Load:
    port = int(url.rsplit(":", 1)[1])
    code = f"import gateway; gateway.drive({port}, {key!r}, {concurrency}, {duration})"
    out = await _output(sys.executable, "-c", code, env={**os.environ, "PYTHONPATH": str(HERE)})
    figures = json.loads(out.strip().splitlines()[-1])
    if figures["failures"]:
        raise RuntimeError(f"{figures['failures']} failed submissions to {url}, the first: {figures['failure'][0]}")
    return Load(figures["requests"], figures["seconds"], figures["p50_ms"], figures["p99_ms"])


async def _one_answer(url: str, key: str) -> str:
    """What the server answers one submission, to say why a load run failed."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url + PATH, json=BODY, headers={"Authorization": f"Bearer {key}"})
    return f"{response.status_code} {response.text[:500]}"


# --- the run -------------------------------------------------------------------------------------------------------


@dataclass
class Side:
    """One server under load, and what its rounds measured."""

    name: str
    url: str
    key: str
    schema: str
    relayed: bool  # ours: a round also waits until the relay has published every command it staged
    rounds: list[dict[str, float]] = field(default_factory=list)

    async def round(self, conn: asyncpg.Connection, load: Load, *, measured: bool = True) -> None:
        """Figures of a load run just done; for ours, also the submissions it answered per second until published:
        each was committed before its 202, so once the outbox is empty, every one of them has left it."""
        ended = time.perf_counter()
        while self.relayed and await conn.fetchval(f'SELECT count(*) FROM "{self.schema}".outbox'):
            await asyncio.sleep(0.005)
        drain_s = time.perf_counter() - ended
        figures = {"p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "requests_per_s": load.requests / load.seconds}
        if self.relayed:
            figures["published_per_s"] = load.requests / (load.seconds + drain_s)
        if measured:
            self.rounds.append(figures)

    def figures(self, key: str) -> list[float]:
        return [round_[key] for round_ in self.rounds if key in round_]


async def api_key(gateway_url: str, admin_key_file: Path) -> str:
    """A developer key with room for the run."""
    admin = (await asyncio.to_thread(admin_key_file.read_text)).strip()
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as client:
        created = await client.post(
            "/v1/api-keys",
            json={"name": "bench", "role": "developer", "rate_limit": "10000000/minute"},
            headers={"Authorization": f"Bearer {admin}"},
        )
    key: str = created.json()["key"]
    return key


async def register_inputs(settings: Settings, gateway_url: str, key: str) -> None:
    """The base model and the dataset the submissions name, registered (the registry serves both gateways)."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        files = [  # what a base model import must hold: a config, weights, a tokenizer (with a chat template)
            ("files", ("config.json", b'{"architectures": ["LlamaForCausalLM"]}')),
            ("files", ("model.safetensors", b"0" * 64)),
            ("files", ("tokenizer.json", b'{"version": "1.0"}')),
            ("files", ("chat_template.jinja", b"{% for message in messages %}{{ message['content'] }}{% endfor %}")),
        ]
        imported = await client.post("/v1/artifacts", data={"kind": "base_model", "name": "bench-llama"}, files=files)
        if imported.status_code >= 300:
            raise RuntimeError(f"importing the base model: {imported.status_code} {imported.text}")
        bus = Bus(settings.model_copy(update={"service_name": "bench"}))
        await bus.start()
        try:
            await bus.publish(
                DatasetVersionCreated(
                    dataset_id=f"dataset-{DATASET}-v0",
                    name=DATASET,
                    version=0,
                    schema_kind=DatasetSchema.CHAT,
                    uri="file:///bench",
                    num_rows=100,
                    size_bytes=10_000,
                    created_by="bench",
                )
            )
        finally:
            await bus.stop()
        async with asyncio.timeout(START_TIMEOUT_S):
            while (await client.get(f"/v1/artifacts/{imported.json()['id']}")).status_code != 200:
                await asyncio.sleep(0.2)
            while not (await client.get("/v1/artifacts", params={"kind": "dataset", "name": DATASET})).json()["data"]:
                await asyncio.sleep(0.2)


def _ratio(ours: Side, key: str, baseline: Side) -> float:
    return statistics.median(ours.figures(key)) / statistics.median(baseline.figures("requests_per_s"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16, help="connections open at once")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python-load", action="store_true", help="load from a Python process even if wrk is here")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    generate = wrk if use_wrk else python_load
    async with isolated_stack() as settings:
        sink_port, registry_port, baseline_port = free_port(), free_port(), free_port()
        gateway_ports = {"gateway": free_port(), "gateway_nocache": free_port()}
        sink_url, registry_url = f"http://127.0.0.1:{sink_port}", f"http://127.0.0.1:{registry_port}"
        # As compose/ and k8s/ set it: spans and logs to the collector at INFO; no sample ratio, so every trace.
        traced = {"MODELOPS_OTLP_ENDPOINT": f"{sink_url}/v1/traces", "MODELOPS_LOG_LEVEL": "INFO"}
        nocache_state = settings.state_dir / "gateway-nocache"  # a gateway writes its admin key to its state dir
        nocache_state.mkdir()
        default_cache_s = GatewaySettings.model_fields["gateway_registry_cache_s"].default
        gateway_envs = {
            schema: {
                **traced,
                "MODELOPS_GATEWAY_PORT": str(port),
                "MODELOPS_GATEWAY_SCHEMA": schema,
                "MODELOPS_REGISTRY_URL": registry_url,
                "MODELOPS_GATEWAY_REGISTRY_CACHE_S": "0" if schema == "gateway_nocache" else str(default_cache_s),
                **({"MODELOPS_STATE_DIR": str(nocache_state)} if schema == "gateway_nocache" else {}),
            }
            for schema, port in gateway_ports.items()
        }
        registry_env = {
            **traced,
            "MODELOPS_SERVICE_NAME": "registry",
            "MODELOPS_REGISTRY_PORT": str(registry_port),
            "MODELOPS_REGISTRY_KEYS_DIR": str(settings.state_dir / "keys"),
        }
        baseline_args = ["-m", "uvicorn", "--factory", "gateway:baseline_app", "--port", str(baseline_port)]
        baseline_args += ["--log-level", "warning", "--no-access-log"]  # the gateway logs no access either
        baseline_env = {**traced, "PYTHONPATH": str(HERE)}
        sink_args = ["-c", f"import gateway; gateway.otlp_sink({sink_port})"]
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        baseline_key = secrets.token_urlsafe(32)
        await conn.execute(BASELINE_TABLES)
        digest = hashlib.sha256(baseline_key.encode()).hexdigest()
        await conn.execute("INSERT INTO bench_baseline.api_keys VALUES ('key-bench', 'bench', $1, NULL)", digest)
        gateway_url, nocache_url = (f"http://127.0.0.1:{port}" for port in gateway_ports.values())
        try:
            async with (
                process(sink_args, {"PYTHONPATH": str(HERE)}, sink_url, ready="/"),
                process(["-m", "modelops_registry"], registry_env, registry_url),
                process(["-m", "modelops_gateway"], gateway_envs["gateway"], gateway_url),
                process(["-m", "modelops_gateway"], gateway_envs["gateway_nocache"], nocache_url),
                process(baseline_args, baseline_env, f"http://127.0.0.1:{baseline_port}", ready="/docs"),
            ):
                ours_key = await api_key(gateway_url, settings.state_dir / "admin.key")
                nocache_key = await api_key(nocache_url, nocache_state / "admin.key")
                await register_inputs(settings, gateway_url, ours_key)
                baseline = Side("baseline", f"http://127.0.0.1:{baseline_port}", baseline_key, BASELINE_SCHEMA, False)
                ours = Side("ours", gateway_url, ours_key, "gateway", True)
                nocache = Side("ours, cache off", nocache_url, nocache_key, "gateway_nocache", True)
                sides = [baseline, ours, nocache]
                for side in sides:
                    await side.round(conn, await generate(side.url, side.key, args.concurrency, WARM_S), measured=False)
                for index in range(args.rounds):  # each side first in turn
                    for side in sides[index % 3 :] + sides[: index % 3]:
                        await side.round(conn, await generate(side.url, side.key, args.concurrency, args.duration))
                async with httpx.AsyncClient() as client:
                    exports = (await client.get(sink_url)).json()
        finally:
            await conn.close()

    tool = "wrk (1 thread)" if use_wrk else "a Python process (asyncio streams)"
    if not use_wrk:
        tool += ", --python-load" if args.python_load else ", wrk is not on PATH"
    print(f"gateway benchmark: POST {PATH}, load from {tool}, {args.concurrency} connections, {args.duration} s")
    print(f"per side and round, rounds: {args.rounds}, sides interleaved; traced as compose/ and k8s/ configure it")
    print("(OTLP/HTTP to a sink, every request sampled, INFO logs); medians of the rounds (min-max)")
    print(f"  {'':16} {'p50 ms':>23} {'p99 ms':>23} {'requests/s':>18} {'until published/s':>18}")
    for side in sides:
        p50, p99 = spread(side.figures("p50_ms"), 2), spread(side.figures("p99_ms"), 2)
        rates = spread(side.figures("requests_per_s"), 0), spread(side.figures("published_per_s"), 0)
        print(f"  {side.name:16} {p50:>23} {p99:>23} {rates[0]:>18} {rates[1]:>18}")
    print("  (the baseline publishes nothing: its outbox rows stay; ours counts until its relay emptied the outbox)")
    for side, target in ((ours, "   (target ≥ 0.3)"), (nocache, "")):
        http, published = _ratio(side, "requests_per_s", baseline), _ratio(side, "published_per_s", baseline)
        print(f"  ratio {side.name}/baseline requests/s: {http:.2f}, until published {published:.2f}{target}")
    traces, logs = exports.get("/v1/traces", 0), exports.get("/v1/logs", 0)
    print(f"  OTLP sink received {traces} trace exports and {logs} log exports")


if __name__ == "__main__":
    asyncio.run(main())

"""The topic catalog (modelops_contracts.catalog, from which contracts/asyncapi.yaml is generated) against what each
service really does.

Subscriptions are observed: each service's app is started on the session's stack (its lifespan: runtime, consumers)
while every Kafka consumer's `subscribe` and `assign` is recorded. FastStream's subscribers, the registry's tracked
consumer, and the job consumers and cancel watchers (trainer, quantizer, evaluator, rag) all come down to aiokafka's
consumer, so none is missed.

Publications are read from the source: every message a service's package builds (a call of a message class) is
published by it, through its bus or its outbox, unless listed in BUILT_NOT_PUBLISHED with the reason.
"""

from __future__ import annotations

import ast
import importlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from consumer_groups import skip_history
from fastapi import FastAPI
from modelops_contracts import MESSAGE_TYPES, TOPICS, topic_of
from modelops_contracts.catalog import EVALUATION_COMMANDS, QUANTIZATION_COMMANDS, RAG_COMMANDS, TRAINING_COMMANDS
from modelops_evaluator.settings import EvaluatorSettings
from modelops_marketplace.settings import MarketplaceSettings
from modelops_quantizer.settings import QuantizerSettings
from modelops_rag.settings import RagSettings
from modelops_registry.settings import RegistrySettings
from modelops_shared.settings import Settings
from modelops_trainer.settings import TrainerSettings

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
SHARED_JOBS = Path(__file__).resolve().parents[2] / "shared" / "modelops_shared" / "jobs"
SERVICES = sorted(p.name for p in SERVICES_DIR.iterdir() if (p / "pyproject.toml").is_file())
# Messages a service builds without publishing them, each with where and why.
BUILT_NOT_PUBLISHED = {
    ("inference", "Deploy"): "restore.py rebuilds the Deploy commands still wanted, to apply them in this process",
}

# The gateway's console indexes every topic's envelopes as an observer (group <schema>-console, its own Kafka user
# modelops-console in k8s): it reads but consumes nothing, so it is no consumer the catalog lists.
OBSERVER_GROUP_SUFFIX = "-console"


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def _gateway_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    from gateway.conftest import gateway_settings

    return gateway_settings(stack, scratch, registry_url)


async def _registry_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    return RegistrySettings(
        **stack.model_dump(exclude={"service_name"}), registry_schema=_unique("reg"), registry_keys_dir=scratch
    )


async def _trainer_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    settings = TrainerSettings(
        **stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        trainer_schema=_unique("trainer"),
        trainer_group=_unique("trainer"),
        trainer_work_dir=scratch,
    )
    # Its job consumer must not pick up earlier tests' jobs while it runs here.
    await skip_history(stack, settings.trainer_group, TRAINING_COMMANDS)
    return settings


async def _quantizer_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    settings = QuantizerSettings(
        **stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        quantizer_schema=_unique("quantizer"),
        quantizer_group=_unique("quantizer"),
        quantizer_work_dir=scratch,
    )
    # Its job consumer must not pick up earlier tests' jobs while it runs here.
    await skip_history(stack, settings.quantizer_group, QUANTIZATION_COMMANDS)
    return settings


async def _evaluator_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    settings = EvaluatorSettings(
        **stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        evaluator_schema=_unique("evaluator"),
        evaluator_group=_unique("evaluator"),
        evaluator_work_dir=scratch,
    )
    # Its job consumer must not pick up earlier tests' jobs while it runs here.
    await skip_history(stack, settings.evaluator_group, EVALUATION_COMMANDS)
    return settings


async def _rag_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    settings = RagSettings(
        **stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        rag_schema=_unique("rag"),
        rag_group=_unique("rag"),
        rag_work_dir=scratch,
    )
    # Its job consumer must not pick up earlier tests' jobs while it runs here.
    await skip_history(stack, settings.rag_group, RAG_COMMANDS)
    return settings


async def _marketplace_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    # No job consumer: its groups (<schema>-registry, <schema>-usage) are projections, new with the unique schema.
    return MarketplaceSettings(
        **stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        marketplace_schema=_unique("marketplace"),
        marketplace_work_dir=scratch,
    )


async def _inference_settings(stack: Settings, registry_url: str, scratch: Path) -> Settings:
    from inference.support import inference_settings

    settings = inference_settings(stack, registry_url).model_copy(update={"inference_restore": False})
    return settings


SETTINGS: dict[str, Callable[[Settings, str, Path], Any]] = {
    "gateway": _gateway_settings,
    "registry": _registry_settings,
    "trainer": _trainer_settings,
    "quantizer": _quantizer_settings,
    "evaluator": _evaluator_settings,
    "rag": _rag_settings,
    "marketplace": _marketplace_settings,
    "inference": _inference_settings,
}


async def _subscribed_topics(
    service: str, stack: Settings, registry_url: str, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> set[str]:
    """The topics the service's consumers subscribe to or are assigned, while its app starts."""
    assert service in SETTINGS, f"services/{service}: say here how to start it on the test stack"
    settings = await SETTINGS[service](stack, registry_url, scratch)
    create_app: Callable[[Settings], FastAPI] = importlib.import_module(f"modelops_{service}.app").create_app
    topics: set[str] = set()
    subscribe, assign = AIOKafkaConsumer.subscribe, AIOKafkaConsumer.assign

    def recording_subscribe(consumer: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> None:
        if not str(consumer._group_id or "").endswith(OBSERVER_GROUP_SUFFIX):
            topics.update(kwargs.get("topics", args[0] if args else ()))
        subscribe(consumer, *args, **kwargs)

    def recording_assign(consumer: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> None:
        topics.update(tp.topic for tp in kwargs.get("partitions", args[0] if args else ()))
        assign(consumer, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(AIOKafkaConsumer, "subscribe", recording_subscribe)
        patched.setattr(AIOKafkaConsumer, "assign", recording_assign)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            pass
    return topics


def _calls(package: Path) -> set[str]:
    """The names of everything the modules under `package` call."""
    called = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                called.add(getattr(node.func, "id", None) or getattr(node.func, "attr", None))
    return called - {None}


def _built_messages(service: str) -> set[str]:
    """The names of the message classes the service's package calls, and those the shared job consumer builds (its
    usage record) when the service runs one."""
    classes = {model.__name__ for model in MESSAGE_TYPES.values()}
    called = _calls(SERVICES_DIR / service / f"modelops_{service}")
    if "JobConsumer" in called:
        called |= _calls(SHARED_JOBS)
    return called & classes


def _published_topics(service: str) -> set[str]:
    by_name = {model.__name__: model for model in MESSAGE_TYPES.values()}
    built = _built_messages(service)
    exempt = {name for (owner, name) in BUILT_NOT_PUBLISHED if owner == service}
    assert exempt <= built, f"{service} no longer builds {exempt - built}: drop them from BUILT_NOT_PUBLISHED"
    return {topic_of(by_name[name]).name for name in built - exempt}


def _listed(role: str) -> dict[str, set[str]]:
    """The catalog's producers or consumers of every topic named for particular services ("any" is no service)."""
    return {topic.name: set(getattr(topic, role)) for topic in TOPICS if getattr(topic, role) != ("any",)}


@pytest.mark.slow
async def test_every_service_consumes_and_produces_what_the_catalog_says(
    embedded_stack: Settings,
    registry_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscribed = {
        service: await _subscribed_topics(
            service, embedded_stack, registry_url, tmp_path_factory.mktemp(service), monkeypatch
        )
        for service in SERVICES
    }
    published = {service: _published_topics(service) for service in SERVICES}
    for role, real in (("consumers", subscribed), ("producers", published)):
        listed = _listed(role)
        found = {name: {service for service in SERVICES if name in real[service]} for name in listed}
        assert found == listed, f"catalog {role} differ from the services: found {found}, listed {listed}"
        # A service may not touch a topic the catalog leaves to everyone (diagnostics) or does not know.
        catalogued = set(listed)
        for service in SERVICES:
            assert real[service] <= catalogued, (
                f"{service} {role[:-1]}s {real[service] - catalogued}, not in the catalog"
            )

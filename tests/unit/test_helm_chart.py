"""The Helm chart (helm/modelops), tested as far as this machine allows (no helm binary: the templates are not
rendered here). values.yaml passes values.schema.json and wrong values do not; the values hold what k8s/base holds
(ports, replicas, resources, volumes, env, PDBs, HPA, the network flows, the ConfigMap and Secret keys); every
MODELOPS_* name the chart sets is a setting of the service that reads it; and the templates use only values that the
schema defines."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from modelops_evaluator.settings import EvaluatorSettings
from modelops_gateway.settings import GatewaySettings
from modelops_inference.settings import InferenceSettings
from modelops_marketplace.settings import MarketplaceSettings
from modelops_quantizer.settings import QuantizerSettings
from modelops_rag.settings import RagSettings
from modelops_registry.settings import RegistrySettings
from modelops_trainer.settings import TrainerSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "modelops"
BASE = ROOT / "k8s" / "base"
SETTINGS = {
    "gateway": GatewaySettings,
    "registry": RegistrySettings,
    "trainer": TrainerSettings,
    "quantizer": QuantizerSettings,
    "evaluator": EvaluatorSettings,
    "rag": RagSettings,
    "marketplace": MarketplaceSettings,
    "inference": InferenceSettings,
}
# What the services template writes into every container's env; the rest is each service's extraEnv.
GENERATED_ENV = {
    "MODELOPS_SERVICE_NAME",
    "MODELOPS_KAFKA_SASL_USERNAME",
    "MODELOPS_KAFKA_SASL_PASSWORD",
    "HOME",
    "HF_HOME",
}
GENERATED_VOLUMES = {"state", "tmp", "kafka-ca", "service-key", "service-keys"}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def base() -> dict[tuple[str, str], dict[str, Any]]:
    """k8s/base's objects by (kind, name)."""
    objects = {}
    for path in BASE.glob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def test_the_values_pass_the_schema_and_wrong_ones_do_not(values, schema):
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(values)
    wrong = {
        "replicas as words": ("services", "trainer", "replicas", "two"),
        "an unknown setting": ("services", "trainer", "cpus", 4),
        "a caller that is no service": ("services", "rag", "callers", ["billing"]),
        "a quantity that is none": (
            "services",
            "inference",
            "resources",
            {"requests": {"cpu": "lots", "memory": "1Gi"}},
        ),
        "a config name without the prefix": ("config", "KAFKA_BOOTSTRAP", "x"),
        "negative GPUs": ("services", "trainer", "gpus", -1),
    }
    for case, (*path, key, value) in wrong.items():
        changed = copy.deepcopy(values)
        target = changed
        for part in path:
            target = target[part]
        target[key] = value
        assert list(validator.iter_errors(changed)), case
    no_hpa_fields = copy.deepcopy(values)
    no_hpa_fields["services"]["trainer"]["autoscaling"] = {"enabled": True}
    assert list(validator.iter_errors(no_hpa_fields)), "autoscaling without its bounds"


def test_every_deployment_of_the_base_is_a_service_with_the_same_shape(values, base):
    deployments = {name: obj for (kind, name), obj in base.items() if kind == "Deployment"}
    assert set(deployments) == set(values["services"])
    for name, deployment in deployments.items():
        chart = values["services"][name]
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == chart["component"], name
        assert container["ports"][0]["containerPort"] == chart["port"], name
        if chart["autoscaling"]["enabled"]:
            assert "replicas" not in deployment["spec"], name
        else:
            assert deployment["spec"]["replicas"] == chart["replicas"], name
        assert pod["terminationGracePeriodSeconds"] == chart["terminationGracePeriodSeconds"], name
        assert container["resources"] == chart["resources"], name
        assert container["image"].split(":")[0] == f"modelops/{name}", name
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        state = volumes["state"]
        if chart["state"]["perPodClaim"]:
            claim = state["ephemeral"]["volumeClaimTemplate"]["spec"]
            assert claim["resources"]["requests"]["storage"] == chart["state"]["size"], name
        else:
            assert state["emptyDir"]["sizeLimit"] == chart["state"]["size"], name
        assert volumes["tmp"]["emptyDir"]["sizeLimit"] == chart["tmpSize"], name
        extra_env = [e for e in container["env"] if e["name"] not in GENERATED_ENV | {f"MODELOPS_{name.upper()}_PORT"}]
        assert extra_env == chart.get("extraEnv", []), name
        assert [v for v in pod["volumes"] if v["name"] not in GENERATED_VOLUMES] == chart.get("extraVolumes", [])
        mounts = [m for m in container["volumeMounts"] if m["name"] not in GENERATED_VOLUMES]
        assert mounts == chart.get("extraVolumeMounts", []), name


def test_budgets_autoscaling_config_and_secret_keys_match_the_base(values, base):
    budgets = {
        name: obj["spec"]["maxUnavailable"] for (kind, name), obj in base.items() if kind == "PodDisruptionBudget"
    }
    assert budgets == {
        name: service["disruptionBudget"]["maxUnavailable"]
        for name, service in values["services"].items()
        if "disruptionBudget" in service
    }
    scaled = {name: obj["spec"] for (kind, name), obj in base.items() if kind == "HorizontalPodAutoscaler"}
    assert set(scaled) == {name for name, service in values["services"].items() if service["autoscaling"]["enabled"]}
    for name, spec in scaled.items():
        chart = values["services"][name]["autoscaling"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (chart["minReplicas"], chart["maxReplicas"])
        assert spec["metrics"][0]["resource"]["target"]["averageUtilization"] == chart["cpuUtilization"]
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == chart["scaleDownStabilizationSeconds"]
    assert base[("ConfigMap", "modelops-config")]["data"] == values["config"]
    assert set(base[("Secret", "modelops-secrets")]["stringData"]) == set(values["secrets"]["values"])
    claim = base[("PersistentVolumeClaim", "registry-keys")]["spec"]["resources"]["requests"]["storage"]
    assert claim == values["registryKeys"]["size"]


def _selected(peers: list[dict[str, Any]]) -> set[str]:
    names = {peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") for peer in peers}
    return names - {None}


def test_the_network_flows_are_the_base_s(values, base):
    policies = [obj["spec"] for (kind, _), obj in base.items() if kind == "NetworkPolicy"]
    callers: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    ports = {service["port"]: name for name, service in values["services"].items()}
    infrastructure = []
    for spec in policies:
        selector = spec["podSelector"]
        targets = (
            [selector["matchLabels"]["app.kubernetes.io/name"]]
            if "matchLabels" in selector
            else selector.get("matchExpressions", [{}])[0].get("values", [])
        )
        for rule in spec.get("ingress", []):
            if "namespaceSelector" in str(rule):
                continue  # Prometheus
            for target in targets:
                callers.setdefault(target, set()).update(_selected(rule["from"]) if "from" in rule else {"*"})
        for rule in spec.get("egress", []):
            for peer in rule["to"]:
                if "namespaceSelector" in peer and "podSelector" not in peer:
                    namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    infrastructure.append({"namespace": namespace, "port": rule["ports"][0]["port"]})
            for target in targets or ["*"]:
                for callee in _selected(rule["to"]):
                    assert ports[rule["ports"][0]["port"]] == callee
                    calls.setdefault(target, set()).add(callee)
    for name, service in values["services"].items():
        assert set(service["callers"]) == callers.get(name, set()), name
        assert set(service["calls"]) == calls.get(name, set()), name
    assert values["networkPolicy"]["infrastructure"] == infrastructure


def _field(name: str) -> str:
    return name.removeprefix("MODELOPS_").lower()


def test_every_modelops_name_the_chart_sets_is_a_setting_of_the_service_that_reads_it(values):
    # The ConfigMap and Secret go to every service: each name is a setting of at least one.
    every = set().union(*(settings.model_fields for settings in SETTINGS.values()))
    shared = [*values["config"], *values["secrets"]["values"]]
    assert not [n for n in shared if _field(n) not in every]
    for name, service in values["services"].items():
        own = [f"MODELOPS_{name.upper()}_PORT"]
        own += [e["name"] for e in service.get("extraEnv", []) if e["name"].startswith("MODELOPS_")]
        assert not [n for n in own if _field(n) not in SETTINGS[name].model_fields], name


def test_the_templates_use_only_values_the_schema_defines(values, schema):
    service_keys = set(schema["$defs"]["service"]["properties"])
    top = schema["properties"]
    for template in (CHART / "templates").iterdir():
        text = template.read_text()
        for key in re.findall(r"\$service\.([A-Za-z]+)", text):
            assert key in service_keys, (template.name, key)
        for path in re.findall(r"\.Values\.([A-Za-z.]+)", text):
            node: dict[str, Any] = {"properties": top}
            for part in path.split("."):
                assert part in node.get("properties", {}), (template.name, path)
                node = node["properties"][part]

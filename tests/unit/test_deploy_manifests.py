"""The production manifests (compose/ and k8s/) agree with the code they deploy.

Pure parsing: no docker, no kubectl, no network. Every expectation is derived from the code: the services are the
ones `make up` discovers, the variable names come from the settings classes and their env prefix, the ports from the
settings' defaults, the metric names from the collectors the services register. So a renamed setting, a new
service, a moved port or a file left out of the kustomization fails here instead of at deploy time.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from modelops_shared.bus.broker import make_broker
from modelops_shared.devstack.services import discover
from modelops_shared.settings import Settings
from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
K8S = REPO / "k8s"
BASE = K8S / "base"
OVERLAYS = K8S / "overlays"

SERVICES = discover(REPO / "services")
PREFIX = str(Settings.model_config.get("env_prefix", "")).upper()
VARIABLE = re.compile(rf"\b{re.escape(PREFIX)}[A-Z0-9_]+\b")
# The series suffixes prometheus_client adds to a family's name.
SERIES_SUFFIXES = ("", "_total", "_created", "_bucket", "_sum", "_count")


# --- what the code says -----------------------------------------------------------------------------------------


def variables(settings_class: type[Settings]) -> set[str]:
    """The environment variables a settings class reads: its env prefix plus each field name, upper-cased."""
    prefix = str(settings_class.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in settings_class.model_fields}


@cache
def settings_class(service: str) -> type[Settings]:
    """The service's own settings class (a subclass of the shared one in modelops_<service>.settings), else the
    shared class."""
    try:
        module = importlib.import_module(f"modelops_{service}.settings")
    except ModuleNotFoundError as error:
        if error.name != f"modelops_{service}.settings":
            raise
        return Settings
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, Settings) and value.__module__ == module.__name__
    ]
    assert len(classes) <= 1, f"modelops_{service}.settings defines several settings classes: {classes}"
    return classes[0] if classes else Settings


def service_variables(service: str) -> set[str]:
    return variables(settings_class(service))


def every_variable() -> set[str]:
    """What a variable shared by all services (a ConfigMap, compose's common block) may be named."""
    names = variables(Settings)
    for service in SERVICES:
        names |= service_variables(service)
    return names


def port_of(service: str) -> int:
    port = Settings.model_fields[f"{service}_port"].default
    assert isinstance(port, int), f"{service}_port has no integer default"
    return port


def service_of_url(value: str) -> tuple[str, int] | None:
    """(service, port) when `value` is an http URL naming one of the services as its host."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or parts.hostname not in SERVICES:
        return None
    assert parts.port is not None, f"{value}: name the port explicitly"
    return parts.hostname, parts.port


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name the services can export: the shared bus metrics, FastStream's middleware metrics (built by
    the real broker factory; no connection is made) and each service's own metrics module."""
    importlib.import_module("modelops_shared.telemetry")
    importlib.import_module("modelops_shared.jobs.metrics")
    make_broker(Settings(service_name="deploy-manifests-test"))
    for service in SERVICES:
        try:
            importlib.import_module(f"modelops_{service}.metrics")
        except ModuleNotFoundError as error:
            if error.name != f"modelops_{service}.metrics":
                raise
    return frozenset(family.name + suffix for family in REGISTRY.collect() for suffix in SERIES_SUFFIXES)


# --- what the manifests say -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the x-* anchors and `<<` merges
    assert isinstance(document, dict)
    return document


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


@cache
def kustomization(directory: Path) -> dict[str, Any]:
    document = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert isinstance(document, dict)
    return document


def base_objects() -> list[dict[str, Any]]:
    return [doc for resource in kustomization(BASE)["resources"] for doc in load_yaml(BASE / resource)]


def base_object(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in base_objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"k8s/base has {len(found)} {kind} named {name!r}"
    return found[0]


def deployments() -> list[dict[str, Any]]:
    return [doc for doc in base_objects() if doc["kind"] == "Deployment"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    name = deployment["metadata"]["name"]
    matches = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(matches) == 1, f"Deployment {name} has no container named {name}"
    return matches[0]


def container_port(container_spec: dict[str, Any], port: int | str) -> int:
    """A numeric port, or the containerPort a named port stands for."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container_spec.get("ports", []) if p.get("name") == port]
    assert named, f"container {container_spec['name']} has no port named {port!r}"
    return int(named[0])


def manifest_files() -> Iterator[Path]:
    for root in (COMPOSE_DIR, K8S):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name != "secrets.env":  # a git-ignored local copy of secrets.env.example
                yield path


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# --- every service is deployed ----------------------------------------------------------------------------------


def test_the_services_are_discovered():
    assert len(SERVICES) >= 4, SERVICES
    assert PREFIX == "MODELOPS_"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_built_from_its_dockerfile_in_compose(service):
    spec = compose_services().get(service)
    assert spec is not None, f"compose/docker-compose.yml has no service {service!r}"
    build = spec["build"]
    # The Dockerfiles COPY contracts/, shared/ and services/<name>/: the build context is the repository root.
    assert (COMPOSE_DIR / build["context"]).resolve() == REPO
    assert build["dockerfile"] == f"services/{service}/Dockerfile"
    assert (REPO / build["dockerfile"]).is_file()
    assert compose_env(spec)[f"{PREFIX}SERVICE_NAME"] == service


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_deployed_by_the_k8s_base(service):
    deployment = base_object("Deployment", service)
    k8s_service = base_object("Service", service)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k8s_service["spec"]["selector"].items() <= labels.items(), f"Service {service} selects no pod of it"
    env = {e["name"]: e.get("value") for e in container(deployment).get("env", [])}
    assert env[f"{PREFIX}SERVICE_NAME"] == service


# --- every MODELOPS_* variable is a real setting ----------------------------------------------------------------


def test_every_variable_named_anywhere_in_the_manifests_is_a_setting():
    known = every_variable()
    unknown = {
        f"{path.relative_to(REPO)}: {name}"
        for path in manifest_files()
        for name in VARIABLE.findall(path.read_text(errors="replace"))
        if name not in known
    }
    assert not unknown, f"not a field of any settings class: {sorted(unknown)}"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_gives_each_service_only_its_own_settings(service):
    env = compose_env(compose_services()[service])
    names = {name for name in env if name.startswith(PREFIX)}
    assert names, f"compose passes no {PREFIX}* variable to {service}"
    assert names <= service_variables(service), names - service_variables(service)


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_gives_each_service_only_its_own_settings(service):
    spec = container(base_object("Deployment", service))
    names = {e["name"] for e in spec.get("env", []) if e["name"].startswith(PREFIX)}
    assert names <= service_variables(service), names - service_variables(service)
    sources = {ref["configMapRef"]["name"] for ref in spec["envFrom"] if "configMapRef" in ref}
    sources |= {ref["secretRef"]["name"] for ref in spec["envFrom"] if "secretRef" in ref}
    assert sources == {"modelops-config", "modelops-secrets"}


def test_the_configmap_and_secret_hold_settings_only():
    known = every_variable()
    config = base_object("ConfigMap", "modelops-config")["data"]
    secret = base_object("Secret", "modelops-secrets")["stringData"]
    assert set(config) <= known, set(config) - known
    assert set(secret) <= known, set(secret) - known
    assert not set(config) & set(secret)
    # What the operator must supply: the infrastructure's addresses and credentials.
    for field in ("kafka_bootstrap", "object_store_url", "s3_endpoint"):
        assert f"{PREFIX}{field.upper()}" in config
    for field in ("database_url", "redis_url", "s3_access_key", "s3_secret_key"):
        assert f"{PREFIX}{field.upper()}" in secret


def test_the_secret_template_holds_placeholders_only():
    secret = base_object("Secret", "modelops-secrets")["stringData"]
    assert all("REPLACE_ME" in value for value in secret.values()), secret
    # Every secret setting (a SecretStr field) that the template leaves out is then left at its embedded default.
    # Or each Deployment gives it from a Secret of its own (a per-service credential, such as its Kafka password).
    secret_fields = {
        f"{PREFIX}{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    for deployment in deployments():
        own = {
            env["name"] for env in container(deployment).get("env", []) if "secretKeyRef" in env.get("valueFrom", {})
        }
        assert secret_fields <= set(secret) | own, (deployment["metadata"]["name"], secret_fields - set(secret) - own)
    example = env_file(OVERLAYS / "dev" / "secrets.env.example")
    assert set(example) == set(secret)


def test_secret_settings_are_not_in_plain_compose_text():
    """Compose takes every password from compose/.env, never a literal."""
    secret_fields = [name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)]
    common = compose()["x-modelops-env"]
    for field in secret_fields:
        assert "${" in common[f"{PREFIX}{field.upper()}"], field
    assert (COMPOSE_DIR / ".env.example").is_file()


# --- ports --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_exposes_the_service_port(service):
    exposed = re.findall(r"^EXPOSE\s+(\d+)", (REPO / "services" / service / "Dockerfile").read_text(), re.M)
    assert exposed == [str(port_of(service))]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_ports_match_the_service_port(service):
    spec = compose_services()[service]
    port = port_of(service)
    env = compose_env(spec)
    assert env.get(f"{PREFIX}{service.upper()}_PORT", str(port)) == str(port)
    published = [str(p).rsplit(":", 1)[-1] for p in spec.get("ports", [])]
    exposed = [str(p) for p in spec.get("expose", [])]
    assert published or exposed
    assert set(published + exposed) == {str(port)}
    assert f"127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"])


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_ports_match_the_service_port(service):
    port = port_of(service)
    spec = container(base_object("Deployment", service))
    assert [p["containerPort"] for p in spec["ports"]] == [port]
    env = {e["name"]: e.get("value") for e in spec.get("env", [])}
    assert env.get(f"{PREFIX}{service.upper()}_PORT", str(port)) == str(port)
    for k8s_port in base_object("Service", service)["spec"]["ports"]:
        assert k8s_port["port"] == port
        assert container_port(spec, k8s_port.get("targetPort", k8s_port["port"])) == port
    annotations = base_object("Deployment", service)["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/port", str(port)) == str(port)


def test_service_urls_in_settings_name_the_right_port():
    """MODELOPS_REGISTRY_URL, MODELOPS_INFERENCE_URL …, wherever they are set."""
    values: list[tuple[str, str]] = []
    for name, spec in compose_services().items():
        values += [(f"compose {name}", v) for k, v in compose_env(spec).items() if k.startswith(PREFIX)]
    values += [("configmap", v) for v in base_object("ConfigMap", "modelops-config")["data"].values()]
    for deployment in deployments():
        values += [("k8s env", str(e.get("value"))) for e in container(deployment).get("env", [])]
    checked = 0
    for where, value in values:
        if target := service_of_url(value):
            checked += 1
            assert target[1] == port_of(target[0]), f"{where}: {value}"
    assert checked, "no service URL found: the services would not find each other"


def test_prometheus_scrapes_every_service_on_its_port():
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for service in SERVICES:
        assert f"{service}:{port_of(service)}" in targets


# --- probes and health checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_probes_use_healthz_and_readyz(service):
    spec = container(base_object("Deployment", service))
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        if probe == "startupProbe" and probe not in spec:
            continue
        get = spec[probe]["httpGet"]
        assert get["path"] == path, f"{service} {probe}"
        assert container_port(spec, get["port"]) == port_of(service), f"{service} {probe}"


def test_compose_dependencies_wait_for_health():
    services = compose_services()
    for name, spec in services.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s missing healthcheck"
    for service in SERVICES:
        depends = services[service]["depends_on"]
        for infrastructure in ("kafka", "postgres"):
            assert depends[infrastructure]["condition"] == "service_healthy", f"{service} → {infrastructure}"


def test_compose_named_volumes_are_declared():
    declared = set(compose().get("volumes") or {})
    for name, spec in compose_services().items():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
            else:
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} does not exist"


# --- security and resources -------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_containers_run_locked_down_with_resources(service):
    deployment = base_object("Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    spec = container(deployment)
    security = {**pod.get("securityContext", {}), **spec.get("securityContext", {})}
    assert security.get("runAsNonRoot") is True
    # runAsNonRoot needs a numeric user to check: the gateway's image names its user.
    assert isinstance(security.get("runAsUser"), int)
    assert security["runAsUser"] > 0
    assert security.get("readOnlyRootFilesystem") is True
    assert security.get("allowPrivilegeEscalation") is False
    mounts = {m["mountPath"] for m in spec.get("volumeMounts", [])}
    assert {"/tmp", "/var/lib/modelops"} <= mounts, "a read-only root needs writable /tmp and state dir"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(spec["resources"][kind]), f"{service} {kind}"


def test_gateway_and_inference_have_disruption_budgets_and_gateway_autoscales():
    for service in ("gateway", "inference"):
        budget = base_object("PodDisruptionBudget", service)
        labels = base_object("Deployment", service)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = base_object("HorizontalPodAutoscaler", "gateway")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "gateway")


# --- kustomize --------------------------------------------------------------------------------------------------


def test_base_kustomization_lists_every_file():
    listed = kustomization(BASE)["resources"]
    present = sorted(p.name for p in BASE.iterdir() if p.is_file() and p.name != "kustomization.yaml")
    assert sorted(listed) == present
    assert len(set(listed)) == len(listed)


@pytest.mark.parametrize("overlay", sorted(p.name for p in OVERLAYS.iterdir()))
def test_overlays_reference_files_that_exist(overlay):
    directory = OVERLAYS / overlay
    document = kustomization(directory)
    for resource in document.get("resources", []):
        assert (directory / resource).exists(), resource
    for patch in document.get("patches", []):
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), patch["path"]
    for generator in document.get("secretGenerator", []):
        for env in generator.get("envs", []):
            # The real file is git-ignored; its template is committed beside it.
            assert (directory / f"{env}.example").is_file(), env
            assert env in (directory / ".gitignore").read_text().split()
    known_images = {container(d)["image"].split(":")[0] for d in deployments()}
    for image in document.get("images", []):
        assert image["name"] in known_images, image["name"]


def test_overlay_patches_name_base_objects_and_settings():
    base = {(doc["kind"], doc["metadata"]["name"]) for doc in base_objects()}
    for directory in OVERLAYS.iterdir():
        for patch in kustomization(directory).get("patches", []):
            for doc in load_yaml(directory / patch["path"]):
                assert (doc["kind"], doc["metadata"]["name"]) in base, f"{directory.name}: {doc['kind']}"
                if doc["kind"] == "ConfigMap":
                    assert set(doc["data"]) <= every_variable()


def test_gpu_overlay_gives_the_trainer_one_gpu():
    document = kustomization(OVERLAYS / "gpu")
    trainers = [
        doc
        for patch in document["patches"]
        for doc in load_yaml(OVERLAYS / "gpu" / patch["path"])
        if (doc["kind"], doc["metadata"]["name"]) == ("Deployment", "trainer")
    ]
    assert len(trainers) == 1
    spec = next(c for c in trainers[0]["spec"]["template"]["spec"]["containers"] if c["name"] == "trainer")
    assert spec["resources"]["limits"]["nvidia.com/gpu"] == 1


# --- autoscaling and the mesh -----------------------------------------------------------------------------------

# Each worker's job commands: the consumer group its settings join and the catalog topic it reads.
WORKERS = {
    "trainer": ("trainer_group", "TRAINING_COMMANDS"),
    "quantizer": ("quantizer_group", "QUANTIZATION_COMMANDS"),
    "evaluator": ("evaluator_group", "EVALUATION_COMMANDS"),
    "rag": ("rag_group", "RAG_COMMANDS"),
}


def test_keda_scales_every_worker_on_its_own_groups_lag_and_inference_on_its_queue():
    from modelops_contracts import catalog

    scaled = {doc["metadata"]["name"]: doc for doc in load_yaml(OVERLAYS / "autoscaling" / "keda.yaml")}
    bootstrap = base_object("ConfigMap", "modelops-config")["data"][f"{PREFIX}KAFKA_BOOTSTRAP"]
    for service, (group_field, topic_name) in WORKERS.items():
        spec = scaled[service]["spec"]
        assert spec["scaleTargetRef"]["name"] == service
        topic: catalog.Topic = getattr(catalog, topic_name)
        group = settings_class(service).model_fields[group_field].default
        triggers = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in spec["triggers"]}
        assert (group, topic.name) in triggers, service
        assert all(t["metadata"]["bootstrapServers"] == bootstrap for t in spec["triggers"])
        assert spec["maxReplicaCount"] <= topic.partitions  # more replicas than partitions would idle
        assert spec["minReplicaCount"] == (1 if service == "rag" else 0)  # rag also serves searches
    assert ("trainer-imports", catalog.MODEL_COMMANDS.name) in {
        (t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in scaled["trainer"]["spec"]["triggers"]
    }
    inference = scaled["inference"]["spec"]
    assert inference["minReplicaCount"] >= 1
    queried = {
        name for t in inference["triggers"] for name in re.findall(r"\bmodelops_[a-z0-9_]+", t["metadata"]["query"])
    }
    assert queried == {"modelops_inference_queue_depth", "modelops_inference_time_to_first_token_seconds_bucket"}
    assert queried <= exported_metric_names()
    users = {doc["metadata"]["name"]: doc for doc in load_yaml(K8S / "strimzi" / "kafka-users.yaml")}
    acls = users["modelops-keda"]["spec"]["authorization"]["acls"]
    assert {op for acl in acls for op in acl["operations"]} == {"Describe"}  # offsets only, never a message


@pytest.mark.parametrize("service", ["trainer", "quantizer", "evaluator", "rag", "inference"])
def test_model_caches_and_work_live_on_a_claim_of_their_own(service):
    """Models and work files take tens of GiB: a PersistentVolumeClaim per pod, not the node's ephemeral storage."""
    volumes = {v["name"]: v for v in base_object("Deployment", service)["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["state"]["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert claim["resources"]["requests"]["storage"].endswith("Gi")
    mounts = {m["name"]: m["mountPath"] for m in container(base_object("Deployment", service))["volumeMounts"]}
    assert mounts["state"] == "/var/lib/modelops"


def test_the_mesh_overlay_authenticates_every_caller_but_the_gateways_and_reaches_its_control_plane():
    patches = {(d["kind"], d["metadata"]["name"]): d for d in load_yaml(OVERLAYS / "linkerd" / "mesh.yaml")}
    namespace = patches[("Namespace", "modelops")]["metadata"]["annotations"]
    assert namespace["linkerd.io/inject"] == "enabled"
    assert namespace["config.linkerd.io/default-inbound-policy"] == "all-authenticated"
    gateway = patches[("Deployment", "gateway")]["spec"]["template"]["metadata"]["annotations"]
    assert gateway["config.linkerd.io/default-inbound-policy"] == "all-unauthenticated"
    (policy,) = load_yaml(OVERLAYS / "linkerd" / "control-plane-policy.yaml")
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {8080, 8086, 8090}


# --- dashboards -------------------------------------------------------------------------------------------------


def test_grafana_dashboard_queries_metrics_the_services_export():
    dashboards = sorted((COMPOSE_DIR / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    exported = exported_metric_names()
    queried: set[str] = set()
    for path in dashboards:
        panels = json.loads(path.read_text())["panels"]
        for panel in panels:
            for target in panel.get("targets", []):
                queried |= set(re.findall(r"\bmodelops_[a-z0-9_]+", target["expr"]))
    assert queried
    assert queried <= exported, sorted(queried - exported)
    # Request rate, latency and consumer lag are on it.
    assert any(name.endswith("_bucket") for name in queried)
    assert any(name.endswith("_total") for name in queried)
    assert "modelops_consumer_lag" in queried


def test_alert_rules_are_loaded_and_watch_metrics_the_services_export():
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    mounts = compose_services()["prometheus"]["volumes"]
    assert "./prometheus-alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    rules = yaml.safe_load((COMPOSE_DIR / "prometheus-alerts.yml").read_text())["groups"][0]["rules"]
    watched = {name for rule in rules for name in re.findall(r"\bmodelops_[a-z0-9_]+", rule["expr"])}
    assert watched <= exported_metric_names(), sorted(watched - exported_metric_names())
    assert {rule["alert"] for rule in rules} >= {
        "ConsumerLagHigh",
        "DeadLettersGrowing",
        "HighServerErrorRate",
        "JobFailureRateHigh",
        "InferenceQueueTimeHigh",
    }


def test_the_observability_and_operations_containers_are_wired_to_what_they_watch():
    services = compose_services()
    collector = yaml.safe_load((COMPOSE_DIR / "otel-collector.yaml").read_text())
    assert collector["exporters"]["otlphttp/loki"]["endpoint"] == "http://loki:3100/otlp"
    assert collector["service"]["pipelines"]["logs"]["exporters"] == ["otlphttp/loki"]
    assert "3100" in services["loki"]["expose"]
    trainer = compose_env(services["trainer"])
    assert trainer["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "--port=5000" in services["mlflow"]["command"]
    kafka_ui = compose_env(services["kafka-ui"])
    common = compose()["x-modelops-env"]
    assert kafka_ui["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == common[f"{PREFIX}KAFKA_BOOTSTRAP"]
    assert kafka_ui["KAFKA_CLUSTERS_0_PROPERTIES_SASL_MECHANISM"] == common[f"{PREFIX}KAFKA_SASL_MECHANISM"]
    sources = yaml.safe_load((COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in sources["datasources"]}
    assert uids == {"prometheus", "jaeger", "loki"}
    for path in (COMPOSE_DIR / "grafana" / "dashboards").glob("*.json"):
        used = set(re.findall(r'"uid": "([a-z]+)"', path.read_text())) - {json.loads(path.read_text())["uid"]}
        assert used <= uids, path.name


# --- network policies -------------------------------------------------------------------------------------------

# Who calls whom over HTTP inside the cluster (DESIGN.md §2); the gateway alone is reached from outside.
CALLERS = {
    "registry": {"gateway", "trainer", "quantizer", "evaluator", "rag", "marketplace", "inference"},
    "inference": {"gateway", "evaluator", "rag"},
    "trainer": set(),
    "quantizer": set(),
    "evaluator": set(),
    "rag": {"gateway"},
    "marketplace": {"gateway"},
}


def _selected(policy: dict[str, Any], service: str) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector:
        return True
    if "matchLabels" in selector:
        return bool(selector["matchLabels"].get("app.kubernetes.io/name") == service)
    return any(service in expression["values"] for expression in selector["matchExpressions"])


def _peers(rules: list[dict[str, Any]], port: int) -> set[str]:
    """The services a set of rules lets through on `port`, by pod name label ("*" for anyone)."""
    peers: set[str] = set()
    for rule in rules:
        if port not in {p["port"] for p in rule.get("ports", [])}:
            continue
        if "from" not in rule and "to" not in rule:
            peers.add("*")
        for peer in rule.get("from", rule.get("to", [])):
            if "namespaceSelector" not in peer:
                peers.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    return peers


def test_network_policies_deny_by_default_and_allow_only_the_architectures_flows():
    policies = [doc for doc in base_objects() if doc["kind"] == "NetworkPolicy"]
    deny = [
        p for p in policies if not p["spec"]["podSelector"] and "ingress" not in p["spec"] and "egress" not in p["spec"]
    ]
    assert deny
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for service in SERVICES:
        port = port_of(service)
        ingress = [rule for p in policies if _selected(p, service) for rule in p["spec"].get("ingress", [])]
        expected = {"*"} if service == "gateway" else CALLERS.get(service, set())
        assert _peers(ingress, port) == expected, service
        egress = [rule for p in policies if _selected(p, service) for rule in p["spec"].get("egress", [])]
        for callee, callers in CALLERS.items():
            allowed = callee in _peers(egress, port_of(callee))
            assert allowed == (service in callers), f"{service} -> {callee}"


def test_kafka_users_may_do_what_the_topic_catalog_says_and_no_more():
    """Each service writes what it produces and the dead-letter topics of what it consumes, reads what it consumes."""
    from modelops_contracts.catalog import TOPICS

    users = {doc["metadata"]["name"]: doc for doc in load_yaml(K8S / "strimzi" / "kafka-users.yaml")}
    assert set(users) == {f"modelops-{service}" for service in SERVICES} | {"modelops-console", "modelops-keda"}
    for service in SERVICES:
        acls = users[f"modelops-{service}"]["spec"]["authorization"]["acls"]
        granted = {
            operation: {acl["resource"]["name"] for acl in acls if operation in acl["operations"]}
            for operation in ("Write", "Read")
        }
        consumed = {topic for topic in TOPICS if service in topic.consumers}
        assert granted["Write"] == {t.name for t in TOPICS if service in t.producers} | {t.dlq for t in consumed}
        assert granted["Read"] == {t.name for t in consumed} | {service}  # and its own consumer groups


def test_the_console_user_reads_every_topic_and_writes_only_to_replay_dead_letters():
    from modelops_contracts.catalog import TOPICS

    users = {doc["metadata"]["name"]: doc for doc in load_yaml(K8S / "strimzi" / "kafka-users.yaml")}
    acls = users["modelops-console"]["spec"]["authorization"]["acls"]
    topics = {acl["resource"]["name"]: set(acl["operations"]) for acl in acls if acl["resource"]["type"] == "topic"}
    for topic in TOPICS:
        assert topics.pop(topic.dlq) == {"Read"}
        assert topics.pop(topic.name) == {"Read", "Write"}
    assert topics == {"*": {"Create", "Describe", "DescribeConfigs"}}
    groups = {acl["resource"]["name"]: set(acl["operations"]) for acl in acls if acl["resource"]["type"] == "group"}
    assert groups == {"gateway-console": {"Read", "Describe"}, "dlq-replay.": {"Read", "Describe"}, "*": {"Describe"}}

"""Settings come from MODELOPS_* variables, with the same names in every environment."""

from pathlib import Path

from modelops_shared.settings import SERVICES, Settings


def test_defaults_describe_the_embedded_stack(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert [settings.port_of(s) for s in SERVICES] == [8000, 8001, 8002, 8003, 8004, 8005, 8006, 8007]
    assert settings.store_url.startswith("file://")
    assert settings.store_url.endswith("/.modelops/objects")


def test_environment_overrides_use_the_modelops_prefix(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("MODELOPS_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("MODELOPS_DATABASE_URL", "postgresql://u:secret@db/modelops")
    monkeypatch.setenv("MODELOPS_GATEWAY_PORT", "9000")
    monkeypatch.setenv("MODELOPS_OBJECT_STORE_URL", "s3://bucket/prefix")
    monkeypatch.setenv("MODELOPS_STATE_DIR", str(tmp_path))
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.port_of("gateway") == 9000
    assert settings.store_url == "s3://bucket/prefix"
    assert settings.state_dir == tmp_path


def test_secrets_never_appear_in_a_repr(monkeypatch):
    monkeypatch.setenv("MODELOPS_DATABASE_URL", "postgresql://u:hunter2@db/modelops")
    monkeypatch.setenv("MODELOPS_S3_SECRET_KEY", "hunter3")
    text = repr(Settings()) + str(Settings().model_dump())
    assert "hunter2" not in text
    assert "hunter3" not in text

"""Kafka access: SASL/SCRAM over TLS reaches every client dialect (aiokafka, FastStream, librdkafka) from the same
settings, a SASL protocol without credentials is refused at start, and the password never shows in a repr."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.security import SASLScram512
from modelops_shared.bus.access import KafkaAccess
from modelops_shared.bus.broker import make_broker
from modelops_shared.settings import Settings


def self_signed_ca(directory: Path) -> Path:
    """A CA certificate file, as a cluster's operator would hand out."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelops-test-ca")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_plaintext_by_default_for_the_embedded_stack() -> None:
    access = KafkaAccess.of(Settings(kafka_bootstrap="127.0.0.1:19092"))
    assert access.aiokafka() == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert access.faststream() is None
    assert access.librdkafka() == {"bootstrap.servers": "127.0.0.1:19092", "security.protocol": "plaintext"}


async def test_sasl_scram_over_tls_reaches_every_client(tmp_path: Path) -> None:
    ca = self_signed_ca(tmp_path)
    settings = Settings(
        kafka_bootstrap="kafka-0:9093,kafka-1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="gateway",
        kafka_sasl_password="s3cret-pw",
        kafka_ssl_ca_file=ca,
    )
    access = KafkaAccess.of(settings)
    options = access.aiokafka()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "gateway",
        "s3cret-pw",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.get_ca_certs()  # the configured CA is loaded
    AIOKafkaProducer(**options)  # aiokafka accepts the whole set

    security = access.faststream()
    assert isinstance(security, SASLScram512)
    assert security.use_ssl
    broker = make_broker(settings.model_copy(update={"service_name": "gateway"}))
    connection = broker.config.broker_config.builder.keywords  # what FastStream hands aiokafka
    assert (connection["security_protocol"], connection["sasl_plain_username"]) == ("SASL_SSL", "gateway")

    assert access.librdkafka() == {
        "bootstrap.servers": "kafka-0:9093,kafka-1:9093",
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(ca),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "gateway",
        "sasl.password": "s3cret-pw",
    }
    assert "s3cret-pw" not in repr(access)


def test_a_sasl_protocol_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="MODELOPS_KAFKA_SASL_USERNAME"):
        KafkaAccess.of(Settings(kafka_security_protocol="SASL_SSL"))

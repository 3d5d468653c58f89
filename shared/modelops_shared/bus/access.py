"""How every Kafka client of a process reaches the brokers: the bootstrap address and, in production, SASL/SCRAM
over TLS. One value, read from settings once, handed to each client in its own dialect (aiokafka, FastStream,
librdkafka), so that no client can be left on plaintext by accident. The embedded stack stays PLAINTEXT on loopback."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from ..settings import Settings

_SCRAM = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


@dataclass(frozen=True)
class KafkaAccess:
    """Hashable, so that a per-address client cache (one admin client per cluster) keys on it."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> KafkaAccess:
        access = cls(
            bootstrap=settings.kafka_bootstrap,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None,
            ca_file=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None,
        )
        if access.sasl and not (access.username and access.password):
            raise ValueError(
                f"MODELOPS_KAFKA_SECURITY_PROTOCOL={access.security_protocol} needs"
                " MODELOPS_KAFKA_SASL_USERNAME and MODELOPS_KAFKA_SASL_PASSWORD"
            )
        return access

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """Verifies the brokers' certificates against `ca_file` (else the system's CAs); None without TLS."""
        return create_ssl_context(cafile=self.ca_file) if self.tls else None

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return options

    def faststream(self) -> BaseSecurity | None:
        """FastStream's `security=` for its KafkaBroker."""
        if self.sasl:
            scram = _SCRAM[self.sasl_mechanism]
            return scram(str(self.username), str(self.password), ssl_context=self.ssl_context(), use_ssl=self.tls)
        return BaseSecurity(ssl_context=self.ssl_context(), use_ssl=True) if self.tls else None

    def librdkafka(self) -> dict[str, str]:
        """librdkafka configuration (confluent-kafka's admin client)."""
        config = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol.lower()}
        if self.tls and self.ca_file:
            config["ssl.ca.location"] = self.ca_file
        if self.sasl:
            config |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": str(self.username),
                "sasl.password": str(self.password),
            }
        return config

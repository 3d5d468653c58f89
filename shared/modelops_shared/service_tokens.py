"""Service identity for internal HTTP calls: each service holds its own Ed25519 key and proves who it is with a
short-lived signed JWT (PyJWT, EdDSA) addressed to the service it calls; the callee trusts only the public keys in its
peers directory. A token from the gateway may also carry the acting user and role, which is how they reach the
registry: never in a request body. The design is in the root README ("Internal calls")."""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .settings import SERVICES, Settings
from .signing.keys import key_id_of, load_public_key, pem_blocks, public_pem_of, write_atomic

log = logging.getLogger(__name__)
TOKEN_LIFETIME_S = 60
# A token is reused for half its life, so a busy caller signs one per half-minute per audience and actor, and a
# callee whose clock runs a little behind still accepts it.
REUSE_FOR_S = TOKEN_LIFETIME_S // 2
CLOCK_SKEW_S = 5
REREAD_S = 30  # how long a removed peer key may still be trusted
PRIVATE_SUFFIX = ".key.pem"
PUBLIC_SUFFIX = ".pub.pem"
BEARER = "Bearer "


class ServiceTokenError(Exception):
    """A token that proves nothing: missing, malformed, expired, for another audience, or from an unknown key."""


@dataclass(frozen=True)
class ServiceCaller:
    """Who called, as a verified token says: the calling service and, when it acts for a user, that user and role."""

    service: str
    subject: str
    role: str | None = None


class ServiceIdentity:
    """This service's private key: signs tokens addressed to other services. Shows its name, never its key."""

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey) -> None:
        self.name = name
        self._key = private_key
        self._kid = key_id_of(private_key.public_key())
        self._cache: dict[tuple[str, str, str | None], tuple[float, str]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceIdentity:
        path = settings.service_key_path
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise ServiceTokenError(
                f"no service key for {settings.service_name} at {path}: create the keys with"
                f" `python -m modelops_shared.service_tokens keygen {path.parent}`"
            ) from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ServiceTokenError(f"{path} is not an Ed25519 private key")
        return cls(settings.service_name, key)

    def token(self, audience: str, *, subject: str | None = None, role: str | None = None) -> str:
        """A token for `audience`, acting for `subject` with `role` when given (else for this service itself)."""
        now = time.time()
        cache_key = (audience, subject or self.name, role)
        cached = self._cache.get(cache_key)
        if cached and now - cached[0] < REUSE_FOR_S:
            return cached[1]
        self._cache = {key: entry for key, entry in self._cache.items() if now - entry[0] < REUSE_FOR_S}
        claims = {
            "iss": self.name,
            "aud": audience,
            "sub": subject or self.name,
            "iat": int(now),
            "exp": int(now) + TOKEN_LIFETIME_S,
            "jti": uuid.uuid4().hex,
            **({"role": role} if role else {}),
        }
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self._kid})
        self._cache[cache_key] = (now, token)
        return token

    def auth(self, audience: str) -> ServiceAuth:
        """httpx auth that signs every request to `audience` as this service."""
        return ServiceAuth(self, audience)

    def __repr__(self) -> str:
        return f"ServiceIdentity({self.name!r}, kid={self._kid[:12]}…)"


class ServiceAuth(httpx.Auth):
    """Adds `Authorization: Bearer <service token>` unless the request already carries one (an acting-user token)."""

    def __init__(self, identity: ServiceIdentity, audience: str) -> None:
        self.identity = identity
        self.audience = audience

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "Authorization" not in request.headers:
            request.headers["Authorization"] = BEARER + self.identity.token(self.audience)
        yield request


class TrustedServices:
    """The public keys of the services allowed to call this one, read from `<peers_dir>/<service>.pub.pem` (a file
    may hold several keys, for rotation). Read again every `REREAD_S`, and when a token names a key not seen yet (at
    most once a second), so a peer whose key appears is trusted without a restart, and a key removed (a leaked one)
    stops being trusted within `REREAD_S`. A file that is not a public key is skipped, with a warning."""

    def __init__(self, audience: str, peers_dir: Path) -> None:
        self.audience = audience
        self.peers_dir = peers_dir
        self._keys: dict[str, tuple[str, ed25519.Ed25519PublicKey]] = {}
        self._read_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustedServices:
        return cls(settings.service_name, settings.service_peers_path)

    def verify(self, authorization: str | None) -> ServiceCaller:
        """The caller a `Bearer` token proves; ServiceTokenError otherwise."""
        if not authorization or not authorization.startswith(BEARER):
            raise ServiceTokenError("a service token is required (Authorization: Bearer …)")
        token = authorization.removeprefix(BEARER).strip()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise ServiceTokenError(f"malformed token: {error}") from None
        service, key = self._key(str(kid))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=service,
                leeway=CLOCK_SKEW_S,
                options={"require": ["iss", "aud", "sub", "iat", "exp"]},
            )
        except jwt.PyJWTError as error:
            raise ServiceTokenError(f"invalid token from {service}: {error}") from None
        if claims["exp"] - claims["iat"] > TOKEN_LIFETIME_S:
            raise ServiceTokenError(f"token from {service} lives longer than {TOKEN_LIFETIME_S} s")
        return ServiceCaller(service=service, subject=claims["sub"], role=claims.get("role"))

    def _key(self, kid: str) -> tuple[str, ed25519.Ed25519PublicKey]:
        age = time.monotonic() - self._read_at
        if age > REREAD_S or (kid not in self._keys and age > 1.0):
            self._keys = dict(_peer_keys(self.peers_dir))
            self._read_at = time.monotonic()
        if kid not in self._keys:
            raise ServiceTokenError("the token's key is not a trusted service key")
        return self._keys[kid]


def _peer_keys(peers_dir: Path) -> Iterable[tuple[str, tuple[str, ed25519.Ed25519PublicKey]]]:
    for path in sorted(peers_dir.glob(f"*{PUBLIC_SUFFIX}")):
        service = path.name.removesuffix(PUBLIC_SUFFIX)
        try:
            keys = [load_public_key(block)[0] for block in pem_blocks(path.read_text())]
        except (OSError, ValueError) as error:
            log.warning("skipping %s: not a public key file (%s)", path, error)
            continue
        for key in keys:
            if isinstance(key, ed25519.Ed25519PublicKey):
                yield key_id_of(key), (service, key)


def keygen(directory: Path, services: Iterable[str] = SERVICES) -> list[str]:
    """An Ed25519 key pair per service that has none in `directory` (private 0600, public beside it); the names made.
    An existing private key is kept, and its public half written again if missing. Embedded, one directory holds
    every key; in production each service mounts only its own private key."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for service in services:
        private_path = directory / f"{service}{PRIVATE_SUFFIX}"
        if private_path.exists():
            key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        else:
            key = ed25519.Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_atomic(private_path, pem, 0o600)
            made.append(service)
        public_path = directory / f"{service}{PUBLIC_SUFFIX}"
        if not public_path.exists():
            assert isinstance(key, ed25519.Ed25519PrivateKey), f"{private_path} is not an Ed25519 key"
            write_atomic(public_path, public_pem_of(key.public_key()).encode(), 0o644)
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modelops_shared.service_tokens", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("keygen", help="create a key pair per service that has none in DIRECTORY")
    make.add_argument("directory", type=Path)
    make.add_argument("services", nargs="*", default=list(SERVICES))
    args = parser.parse_args(argv)
    for service in keygen(args.directory, args.services):
        print(f"{args.directory / service}{PRIVATE_SUFFIX}")


if __name__ == "__main__":
    main()

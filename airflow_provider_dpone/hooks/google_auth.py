"""A Google service account's JSON key and the grant it signs: a JWT assertion (RS256) that the
key's ``token_uri`` exchanges for an access token (OAuth 2.0 JWT bearer grant, RFC 7523;
https://developers.google.com/identity/protocols/oauth2/service-account#httprest).

The key is a secret: it is never shown, and errors about it name the field, not its content.
Signing uses the ``cryptography`` package (installed with Airflow), imported when first needed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..contracts.errors import BadInputError, MissingExtraError

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
LIFETIME = 3600  # seconds: the longest assertion Google accepts
KEY_FIELD = "service_account_key"


@dataclass(frozen=True, repr=False)
class ServiceAccountKey:
    """The fields of a key file the grant needs."""

    client_email: str
    private_key: str  # PEM
    private_key_id: str
    token_uri: str

    def __repr__(self) -> str:  # never the private key
        return f"ServiceAccountKey(client_email={self.client_email!r})"


def parse_key(raw: Any, conn_id: str) -> ServiceAccountKey:
    """The key of extra ``service_account_key``: the JSON key file's text, or the object itself.
    A private key pasted with literal ``\\n`` (a one-line field) gets its newlines back."""

    def fail(problem: str) -> BadInputError:
        return BadInputError(
            f"connection '{conn_id}': extra {KEY_FIELD} {problem}; paste the JSON key file of the "
            "service account (Cloud console: IAM > Service accounts > Keys > Add key > JSON)"
        )

    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise fail("is not JSON") from None
    if not isinstance(raw, Mapping):
        raise fail("is not a JSON object")
    if raw.get("type", "service_account") != "service_account":
        raise fail(f"is a key of type '{raw.get('type')}', not 'service_account'")
    missing = [k for k in ("client_email", "private_key") if not isinstance(raw.get(k), str) or not raw[k]]
    if missing:
        raise fail(f"has no {' or '.join(missing)}")
    private_key = raw["private_key"]
    if "\n" not in private_key.strip():
        private_key = private_key.replace("\\n", "\n")
    return ServiceAccountKey(
        client_email=raw["client_email"],
        private_key=private_key,
        private_key_id=str(raw.get("private_key_id") or ""),
        token_uri=str(raw.get("token_uri") or DEFAULT_TOKEN_URI),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(
    key: ServiceAccountKey, scope: str, conn_id: str, *, subject: str | None = None, now: float | None = None
) -> str:
    """The signed JWT asking ``key.token_uri`` for a token of ``scope``; ``subject``: the user a
    domain-wide-delegated account acts as."""
    issued = int(time.time() if now is None else now)
    header = {"alg": "RS256", "typ": "JWT", **({"kid": key.private_key_id} if key.private_key_id else {})}
    claims = {
        "iss": key.client_email,
        "scope": scope,
        "aud": key.token_uri,
        "iat": issued,
        "exp": issued + LIFETIME,
        **({"sub": subject} if subject else {}),
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    return f"{signing_input}.{_b64(_sign(key.private_key, signing_input.encode(), conn_id))}"


def _sign(pem: str, data: bytes, conn_id: str) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 over ``data``."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError as exc:  # pragma: no cover - Airflow installs cryptography
        raise MissingExtraError(exc.name or "cryptography", "rest") from None
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):  # the message could quote the key: not passed on
        raise BadInputError(
            f"connection '{conn_id}': the private_key of extra {KEY_FIELD} is not a PEM RSA "
            "private key; paste the key file as downloaded"
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise BadInputError(f"connection '{conn_id}': the private_key of extra {KEY_FIELD} is not an RSA key")
    return private.sign(data, padding.PKCS1v15(), hashes.SHA256())

"""Google's OAuth 2.0 token endpoint for service accounts, as Google answers it: the JWT bearer
grant (RFC 7523) whose RS256 signature is checked with the key's public half, on its own socket
(another origin than the API's), issuing short-lived access tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs

from tests.apis.vendor_fake import Reply, VendorFake

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"
ADS_SCOPE = "https://www.googleapis.com/auth/adwords"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _refuse(description: str) -> Reply:
    body = {"error": "invalid_grant", "error_description": description}
    return 400, json.dumps(body).encode(), {"Content-Type": "application/json"}


def new_private_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class GoogleTokenFake:
    """``oauth2.googleapis.com/token`` for one service account. ``grants`` holds the verified
    claims of each grant, ``tokens`` the access tokens issued; ``expires_in`` their lifetime."""

    def __init__(self, scope: str, email: str = "loader@proj-1.iam.gserviceaccount.com") -> None:
        self.scope, self.email = scope, email
        self.key_id = "4f1c0d7a9e2b"
        self.private_key = new_private_key()
        self.grants: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.expires_in = 3599
        self.fake = VendorFake(self.route)
        self.token_uri = f"{self.fake.url}/token"

    def key(self, private_key: Any = None) -> dict[str, str]:
        """The account's JSON key as the Cloud console downloads it (``private_key`` given:
        another key under the same name, whose signatures this endpoint cannot verify)."""
        return {
            "type": "service_account",
            "project_id": "proj-1",
            "private_key_id": self.key_id,
            "private_key": pem(private_key or self.private_key),
            "client_email": self.email,
            "client_id": "104411122233344455566",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }

    def route(self, method: str, path: str, query: dict, headers: Any, body: bytes) -> Reply:
        if method != "POST" or path != "/token":
            return 404, b"Not Found", {"Content-Type": "text/html"}
        if headers.get("Authorization"):  # the JWT grant carries no client credentials
            return _refuse("unexpected Authorization header")
        if "application/x-www-form-urlencoded" not in headers.get("Content-Type", ""):
            return 400, b'{"error": "invalid_request"}', {"Content-Type": "application/json"}
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER or set(form) != {"grant_type", "assertion"}:
            return 400, b'{"error": "unsupported_grant_type"}', {"Content-Type": "application/json"}
        claims = self._verified(form["assertion"])
        if isinstance(claims, tuple):
            return claims
        self.grants.append(claims)
        token = f"ya29.sa-{len(self.tokens)}-{int(time.time())}"
        self.tokens.append(token)
        answer = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return 200, json.dumps(answer).encode(), {"Content-Type": "application/json; charset=utf-8"}

    def _verified(self, assertion: str) -> dict[str, Any] | Reply:
        """The claims of a well-formed JWT signed by this account's key, or Google's refusal."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        parts = assertion.split(".")
        if len(parts) != 3 or "=" in assertion:  # compact JWS: base64url without padding
            return _refuse("Invalid JWT: malformed")
        header, claims = json.loads(_b64decode(parts[0])), json.loads(_b64decode(parts[1]))
        if header.get("alg") != "RS256" or header.get("kid") not in (None, self.key_id):
            return _refuse("Invalid JWT: unsupported algorithm or unknown key id")
        try:
            self.private_key.public_key().verify(
                _b64decode(parts[2]),
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return _refuse("Invalid JWT Signature.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not (isinstance(iat, int) and isinstance(exp, int) and 0 < exp - iat <= 3600):
            return _refuse("Invalid JWT: Token must be a short-lived token (60 minutes)")
        if not (iat - 300 <= now <= exp):
            return _refuse("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe")
        if claims.get("iss") != self.email or claims.get("aud") != self.token_uri:
            return _refuse("Invalid JWT: issuer or audience")
        if claims.get("scope") != self.scope:
            return 400, b'{"error": "invalid_scope"}', {"Content-Type": "application/json"}
        return claims

    def close(self) -> None:
        self.fake.close()

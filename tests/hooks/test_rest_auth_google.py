"""``GoogleAuth`` on its own against the fake Google token endpoint (a real socket that checks
the JWT's RS256 signature with the key's public half): the grant, the token's cache, the
refresh-token fallback and errors that never show the key."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.contracts.redaction import Redactor
from airflow_provider_dpone.hooks import rest_auth
from airflow_provider_dpone.hooks.rest_auth import AuthError, GoogleAuth, authenticator_for
from tests.apis.google_fake import SHEETS_SCOPE, GoogleTokenFake

pytestmark = pytest.mark.unit


@pytest.fixture
def google():
    fake = GoogleTokenFake(SHEETS_SCOPE)
    yield fake
    fake.close()


def build(extra: dict[str, Any], redactor: Redactor | None = None) -> GoogleAuth:
    conn = SimpleNamespace(login=None, password=None)
    base = {"auth": "google", "service_account_scope": SHEETS_SCOPE}
    auth = authenticator_for("gs", conn, {**base, **extra}, redactor or Redactor())
    assert isinstance(auth, GoogleAuth)
    return auth


def test_the_token_is_cached_until_shortly_before_it_expires(google, monkeypatch) -> None:
    auth = build({"service_account_key": google.key()})
    clock = [1000.0]
    monkeypatch.setattr(rest_auth.time, "monotonic", lambda: clock[0])
    first = auth.token()
    assert auth.token() == first and len(google.grants) == 1
    clock[0] += google.expires_in - 60  # still a minute left: reused
    assert auth.token() == first and len(google.grants) == 1
    clock[0] += 40  # within the last 30 seconds: a new grant, signed anew
    assert auth.token() != first and len(google.grants) == 2
    assert google.grants[0]["iss"] == google.email and "sub" not in google.grants[0]


def test_a_subject_is_the_user_a_delegated_account_acts_as(google) -> None:
    auth = build({"service_account_key": google.key(), "service_account_subject": "ads@corp.example"})
    auth.token()
    assert google.grants[0]["sub"] == "ads@corp.example"


def test_the_key_the_assertion_and_the_token_are_redacted(google) -> None:
    redactor = Redactor()
    raw = json.dumps(google.key())
    token = build({"service_account_key": raw}, redactor).token()
    private = google.key()["private_key"]
    text = redactor.redact(f"{raw} {private} {token} {private.splitlines()[1]}")
    assert google.email not in text and "MII" not in text and token not in text


def test_a_refused_key_is_an_auth_error_naming_the_field_not_the_key(google) -> None:
    from tests.apis.google_fake import new_private_key

    forged = google.key(new_private_key())
    with pytest.raises(AuthError, match="service_account_key") as caught:
        build({"service_account_key": forged}).token()
    assert forged["private_key"].splitlines()[1] not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("{not json", "is not JSON"),
        ({"type": "authorized_user", "client_email": "a@b", "private_key": "x"}, "not 'service_account'"),
        ({"client_email": "a@b.example"}, "has no private_key"),
        (
            {"client_email": "a@b.example", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAAsecretAAAA\n"},
            "not a PEM",
        ),
    ],
)
def test_a_malformed_key_fails_before_any_request(key: Any, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem) as caught:
        build({"service_account_key": key}).token()
    assert "secretAAAA" not in str(caught.value)


def test_without_a_key_the_refresh_token_is_used_and_without_either_the_error_names_both() -> None:
    with pytest.raises(BadInputError, match=r"service_account_key.*refresh_token"):
        build({}).token()
    grant = build({"refresh_token": "1//r", "grant_type": "refresh_token", "token_url": "https://t"})._grant()
    assert grant[0] == "https://t" and grant[1]["grant_type"] == "refresh_token"

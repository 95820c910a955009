"""API tokens: only their SHA-256 is stored, each expires, can be revoked and rotated
from the command line (ledger entries), and every use is counted."""
from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from compliance.api import tokens
from compliance.models import ApiToken, LedgerEntry

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def command(*args) -> dict:
    out = io.StringIO()
    call_command("tokens", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def get(secret: str):
    return Client().get("/api/v1/models/", HTTP_AUTHORIZATION=f"Token {secret}")


def test_it_stores_only_the_hash_of_a_token(bob):
    issued = command("issue", "--user", "bob", "--days", "7")
    secret = issued["token"]
    assert secret.startswith("tl_") and len(secret) > 40
    token = ApiToken.objects.get(pk=issued["id"])
    assert token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM compliance_apitoken")
        assert secret not in repr(cursor.fetchall())
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert get(secret).status_code == 200 and get(secret).status_code == 200
    token.refresh_from_db()
    assert token.use_count == 2 and token.last_used_at is not None
    assert LedgerEntry.objects.filter(kind="token.issued", subject=f"token:{token.id}").exists()
    assert "token" not in command("list")["tokens"][0]


def test_an_expired_or_revoked_token_is_refused(bob):
    token, secret = tokens.issue(bob)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = get(secret)
    assert r.status_code == 401 and "the token expired on" in r.json()["error"]
    token, secret = tokens.issue(bob)
    assert command("revoke", token.prefix)["already_revoked"] is False
    r = get(secret)
    assert r.status_code == 401 and r.json()["error"] == "the token was revoked"
    assert command("revoke", str(token.id))["already_revoked"] is True
    assert LedgerEntry.objects.filter(kind="token.revoked").count() == 1


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token \u00e9\u00e9", "Token " + "x" * 5000,
                                    "Token tl_" + "A" * 43])
def test_malformed_tokens_are_a_401(header, db):
    r = Client().get("/api/v1/models/", HTTP_AUTHORIZATION=header)
    assert r.status_code == 401 and r.json()["error"]


def test_the_command_refuses_bad_requests_in_one_line(bob):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        command("issue", "--user", "nobody")
    with pytest.raises(CommandError, match="between 1 and 3660 days"):
        command("issue", "--user", "bob", "--days", "0")
    with pytest.raises(CommandError, match="no single token"):
        command("revoke", "tl_nothing")
    with pytest.raises(CommandError, match="is not a service identity"):
        command("issue", "--service", "bob")

"""Password guessing is throttled (django-axes): after AXES_FAILURE_LIMIT wrong passwords
the right one is refused too, with a 429 and one clear sentence; the lockout is a ledger
entry and one alert however often the locked-out pair retries. Passwords are Argon2."""
from __future__ import annotations

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.contrib.auth.models import User
from django.test import Client, override_settings

from compliance.ledger import ledger
from compliance.models import AccessRecord, Alert, LedgerEntry
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def sign_in(client: Client, password: str, username: str = "alice"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR="203.0.113.7")


def test_it_locks_an_account_out_after_repeated_wrong_passwords(alice, settings):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        r = sign_in(client, f"wrong-{i}")
        assert r.status_code == 200 and b"did not match" in r.content
    r = sign_in(client, "wrong-last")
    assert r.status_code == 429
    for _ in range(40):  # 40 more guesses, then the right password: still locked
        assert sign_in(client, "guess").status_code == 429
    r = sign_in(client, PASSWORD)
    assert r.status_code == 429 and b"Too many failed sign-ins" in r.content
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302

    entries = LedgerEntry.objects.filter(kind="auth.locked_out")
    assert entries.count() == 1 and ledger.payload_of(entries[0])["username"] == "alice"
    alert = Alert.objects.get(kind="auth.locked_out")
    assert alert.details["count"] == 42 and alert.subject == "user:alice"
    assert AccessRecord.objects.filter(action="login", outcome="locked_out").count() == 42


def test_another_address_or_account_is_not_locked_out(alice, bob, settings):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"wrong-{i}")
    assert sign_in(client, PASSWORD).status_code == 429
    other = Client()
    r = other.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.9")
    assert r.status_code == 302
    assert sign_in(Client(), PASSWORD, username="bob").status_code == 302


def test_a_right_password_before_the_limit_resets_the_count(alice, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "wrong")
    assert sign_in(client, PASSWORD).status_code == 302
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "wrong").status_code == 200
    assert not Alert.objects.filter(kind="auth.locked_out").exists()


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"])
def test_passwords_are_hashed_with_argon2():
    from compliance.project import settings as project

    assert project.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    user = User.objects.create_user("erin", password="a long passphrase here")
    assert user.password.startswith("argon2$argon2id$")
    assert identify_hasher(user.password).algorithm == "argon2"
    assert Client().post("/login/", {"username": "erin", "password": "a long passphrase here"}).status_code == 302

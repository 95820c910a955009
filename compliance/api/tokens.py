"""API tokens: `Authorization: Token <secret>`.

A token is 32 random bytes (URL-safe base64, prefixed `tl_`); only its SHA-256 is
stored, so a copy of the database does not hand out working tokens. A service token is
bound to one inference service and acts for it alone; a personal token (CI) acts as its
user. Every token expires (TRACELEDGER_TOKEN_DAYS, default 90), can be revoked and
rotated (`manage.py tokens`), and each use is counted with its time.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from compliance.ledger import ledger
from compliance.models import ApiToken

PREFIX = "tl_"


def _now():
    return timezone.now()


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(user: User, *, service: str = "", days: int | None = None, created_by: str = "") -> tuple[ApiToken, str]:
    """Create a token; return it and its secret (shown once, never stored)."""
    days = settings.TRACELEDGER_TOKEN_DAYS if days is None else days
    if not 1 <= days <= 3660:
        raise ValueError("a token lives between 1 and 3660 days")
    secret = PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, service=service, prefix=secret[:10], key_hash=key_hash(secret),
                                        created_by=created_by, expires_at=_now() + timedelta(days=days))
        ledger.append("token.issued", {"token_id": token.id, "user": user.get_username(), "service": service or None,
                                       "prefix": token.prefix, "expires_at": token.expires_at.isoformat()},
                      subject=f"token:{token.id}", actor=created_by or "system")
    return token, secret


def find(ref: str) -> ApiToken:
    """A token by id or by the prefix shown in `tokens list`."""
    ref = str(ref).strip()
    query = ApiToken.objects.filter(pk=int(ref)) if ref.isdigit() else ApiToken.objects.filter(prefix=ref)
    found = list(query[:2])
    if len(found) != 1:
        raise ValueError(f"no single token {ref!r}: give its id or its prefix from `tokens list`")
    return found[0]


def revoke(token: ApiToken, *, acting_user: str = "system") -> bool:
    """Revoke now (a ledger entry); False if it was revoked already."""
    with transaction.atomic():
        if not ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=_now()):
            return False
        ledger.append("token.revoked", {"token_id": token.id, "user": token.user.get_username(),
                                        "service": token.service or None, "prefix": token.prefix},
                      subject=f"token:{token.id}", actor=acting_user)
    token.refresh_from_db()
    return True


def rotate_service(user: User, service: str, *, days: int | None = None, created_by: str = "") -> tuple[ApiToken, str]:
    """Revoke the service's live tokens and issue a new one, together."""
    with transaction.atomic():
        for old in ApiToken.objects.filter(user=user, service=service, revoked_at=None):
            revoke(old, acting_user=created_by or "system")
        return issue(user, service=service, days=days, created_by=created_by)


class ApiTokenAuthentication(BaseAuthentication):
    """DRF authentication by hashed, expiring, revocable token; `request.auth` is the
    ApiToken (its `service`, when set, is the only service the request may act for)."""

    keyword = "Token"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise AuthenticationFailed("send the token as 'Authorization: Token <token>'")
        try:
            secret = header[1].decode("ascii")
        except UnicodeError:
            raise AuthenticationFailed("the token is not valid") from None
        token = ApiToken.objects.select_related("user").filter(key_hash=key_hash(secret)).first()
        if token is None or not token.user.is_active:
            raise AuthenticationFailed("the token is not valid")
        now = _now()
        if token.revoked_at is not None:
            raise AuthenticationFailed("the token was revoked")
        if token.expires_at <= now:
            raise AuthenticationFailed(f"the token expired on {token.expires_at:%Y-%m-%d}; issue a new one")
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, use_count=F("use_count") + 1)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


def bound_service(request) -> str | None:
    """The service a service token is bound to, else None."""
    token = getattr(request, "auth", None)
    return token.service or None if isinstance(token, ApiToken) else None


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes this authentication (drf-spectacular)."""

    target_class = "compliance.api.tokens.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <token>`: issued by `manage.py tokens` or `create_service_token`"}

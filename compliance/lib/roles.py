"""Roles: auditor (read-only), engineer (register, build, deploy), admin (everything,
keys and users), service (machine identities that ingest provenance), and reviewer:
a capability added to a person who also has a read role, allowing them to decide
cases (the human review GDPR Art. 22 requires), and discloser: a capability allowing
its holder to match a data subject's disclosed input against its commitment and to
export a bundle that carries the input and its salt (each attempt recorded and
rate-limited, see compliance.investigation.disclosure).  No role implies it, admin
included: an admin grants it to the people who answer data subjects' requests.

Roles are Django groups; a superuser is an admin.  Views use `role_required`, API
views use `RolePermission` with a `write_roles` attribute (reads need any role).
"""
from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

AUDITOR, ENGINEER, ADMIN, SERVICE = "auditor", "engineer", "admin", "service"
REVIEWER = "reviewer"
DISCLOSER = "discloser"
ROLES = (AUDITOR, ENGINEER, ADMIN, SERVICE, REVIEWER, DISCLOSER)
READ_ROLES = (AUDITOR, ENGINEER, ADMIN)
WRITE_ROLES = (ENGINEER, ADMIN)
# Investigating is not changing the audited records: auditors may open cases and add
# notes; deciding a case needs a reviewer or an admin.
CASE_ROLES = (AUDITOR, ENGINEER, ADMIN)
DECIDE_ROLES = (REVIEWER, ADMIN)
# Placing or releasing a legal hold suspends or restores erasure: a right of its own
# (not a reader's), given to reviewers and admins.  Kept apart from DECIDE_ROLES so that
# the two can diverge.
HOLD_ROLES = (REVIEWER, ADMIN)

# The access matrix for actions that need more than one role: each entry lists role
# sets that must ALL be met (one role from each). A reviewer decides or closes only
# cases they may also read: the reviewer capability alone opens nothing.
MATRIX = {
    "case.decide": (DECIDE_ROLES, READ_ROLES),
    "case.close": (DECIDE_ROLES, READ_ROLES),
    # a legal hold likewise: only on cases the holder may read
    "case.hold": (HOLD_ROLES, READ_ROLES),
    # a full verification reads every row (one at a time, in the background): the
    # auditor's check and the admin's, not every reader's
    "ledger.verify_full": ((AUDITOR, ADMIN),),
}


def may(user, action: str) -> bool:
    """Whether `user` may take `action` of MATRIX."""
    return all(has_role(user, *roles) for roles in MATRIX[action])

DISCLOSE_ROLES = (DISCLOSER,)


def ensure_groups() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def roles_of(user) -> set[str]:
    if not user or not user.is_authenticated:
        return set()
    cached = getattr(user, "_traceledger_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._traceledger_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def role_required(*roles: str):
    """Login required, then one of `roles`; otherwise 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied("your role does not allow this")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def action_required(action: str):
    """Login required, then `may(user, action)`; otherwise 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not may(request.user, action):
                raise PermissionDenied("your role does not allow this")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class RolePermission(BasePermission):
    """Reads need a read role; writes need one of the view's `write_roles`
    (engineer or admin by default), or `may(user, view.write_action)` when the view
    names a MATRIX action."""

    message = "your role does not allow this"

    def has_permission(self, request, view) -> bool:
        if request.method not in SAFE_METHODS and getattr(view, "write_action", None):
            return may(request.user, view.write_action)
        if request.method in SAFE_METHODS:
            return has_role(request.user, *getattr(view, "read_roles", READ_ROLES))
        return has_role(request.user, *getattr(view, "write_roles", WRITE_ROLES))


def actor_name(user) -> str:
    return user.get_username() if user and user.is_authenticated else "anonymous"

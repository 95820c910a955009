"""Template context for every dashboard page: the signed-in user's roles, so that
pages show only the actions the user may take (the views enforce them again)."""
from __future__ import annotations

from compliance.lib.roles import (
    ADMIN,
    AUDITOR,
    ENGINEER,
    READ_ROLES,
    WRITE_ROLES,
    has_role,
    may,
    roles_of,
)


def dashboard(request) -> dict:
    user = getattr(request, "user", None)
    return {
        "roles": sorted(roles_of(user)),
        "can_read": has_role(user, *READ_ROLES),
        "can_write": has_role(user, *WRITE_ROLES),
        "can_decide": may(user, "case.decide"),
        "is_admin": has_role(user, ADMIN),
        "is_auditor": has_role(user, AUDITOR),
        "is_engineer": has_role(user, ENGINEER),
    }

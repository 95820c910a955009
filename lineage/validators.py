"""One validator per field of the lineage graph, shared by the dashboard forms and the
actions behind the API and the command line, so that every door accepts exactly the
same values (issue 22: the deploy API used to store any environment, HTML included).

Each is a Django validator: it raises django.core.exceptions.ValidationError with one
sentence; forms list them in `validators=[...]`, actions call `clean(...)`.
"""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError

SERVICE_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
ENVIRONMENT_RE = re.compile(r"^[A-Za-z0-9._-]{1,50}$")
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{1,64}$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def validate_service_name(value: str) -> None:
    """1-100 letters, digits, - _ . and never `.` or `..`: the name is a path segment
    of the dashboard (/deployments/<service>/), where those two resolve elsewhere."""
    if not isinstance(value, str) or not SERVICE_RE.match(value):
        raise ValidationError("service name must be 1-100 characters of letters, digits, - _ .", code="invalid")
    if value in (".", ".."):
        raise ValidationError("service name cannot be '.' or '..'", code="invalid")


def validate_environment(value: str) -> None:
    if not isinstance(value, str) or not ENVIRONMENT_RE.match(value):
        raise ValidationError("environment must be 1-50 characters of letters, digits, - _ .", code="invalid")


def validate_commit(value: str) -> None:
    if not isinstance(value, str) or not COMMIT_RE.match(value):
        raise ValidationError(f"commit {value!r} is not a git commit hash (hex, at most 64 digits)", code="invalid")


def validate_sha256(value: str) -> None:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise ValidationError("a sha256 digest is 64 hex characters", code="invalid")


def text_validator(what: str, limit: int):
    """One line of at most `limit` characters, no control characters."""

    def validate(value: str) -> None:
        if not isinstance(value, str) or len(value) > limit:
            raise ValidationError(f"{what} must be at most {limit} characters", code="max_length")
        if CONTROL_RE.search(value):
            raise ValidationError(f"{what} must be one line without control characters", code="invalid")

    validate.__name__ = f"validate_{what.replace(' ', '_')}"
    return validate


validate_model_name = text_validator("model name", 200)
validate_repo = text_validator("repo", 500)
validate_training_run_url = text_validator("training run URL", 500)
validate_training_ref = text_validator("training data reference", 500)


def clean(validator, value):
    """Run one validator for an action; ValueError with its sentence on failure."""
    try:
        validator(value)
    except ValidationError as exc:
        raise ValueError(exc.messages[0]) from None
    return value

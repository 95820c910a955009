"""POST /api/v1/services/<service>/predict/ — audited inference over HTTP:
{"inputs": {name: {"data": [...], "dtype": "float32"}}}.

Every input is bounded before an array is made: the body by its Content-Length
(TRACELEDGER_MAX_REQUEST_BYTES), each tensor by its element count × the dtype the
model declares (TRACELEDGER_MAX_TENSOR_BYTES); a dtype other than the declared one is
refused. A service token acts for its own service only; a request for a service that
was never deployed is a 404. Both refusals go to the access log and to one aggregated
alert, not one alert per request. The verified engine is reused between requests
(inference.runtime.open_cached) while nothing it was verified against has changed.
"""
from __future__ import annotations

import numpy as np
from django.conf import settings
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.api.errors import ApiError
from compliance.api.parsers import JSONParser, check_length
from compliance.api.tokens import bound_service
from compliance.investigation.access import refuse
from compliance.lib.roles import ADMIN, ENGINEER, SERVICE, actor_name, has_role
from inference.loader import EngineRefused
from inference.runtime import open_cached
from lineage.actions import live_deployment
from lineage.models import Deployment

MAX_NDIM = 32  # numpy's own limit


def _leaves(data, name: str) -> int:
    """How many scalars a nested list holds (iteratively, bounded in depth)."""
    count, stack = 0, [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list):
            if depth >= MAX_NDIM:
                raise ApiError(f"input {name!r} is nested deeper than {MAX_NDIM} dimensions")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, (int, float, bool)):
            count += 1
        else:
            raise ApiError(f"input {name!r} must hold numbers only")
    return count


def _dtype_matches(given, declared: np.dtype) -> bool:
    if given is None:
        return True
    if not isinstance(given, str) or len(given) > 16:
        return False
    try:
        return np.dtype(given) == declared
    except (TypeError, ValueError, SyntaxError):
        return False


def parse_feeds(inputs, spec: list[dict]) -> dict[str, np.ndarray]:
    if not isinstance(inputs, dict) or not inputs:
        raise ApiError("inputs must be an object of named tensors")
    declared = {i["name"]: np.dtype(i["dtype"]) for i in spec}
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        missing = sorted(set(declared) - set(inputs))
        raise ApiError((f"missing input(s) {', '.join(missing)}; " if missing else "")
                       + f"unknown input(s) {', '.join(repr(n)[:80] for n in unknown[:5])} "
                       f"(model takes {', '.join(declared)})")
    tensor_limit, total_limit, total = settings.TRACELEDGER_MAX_TENSOR_BYTES, settings.TRACELEDGER_MAX_REQUEST_BYTES, 0
    feeds = {}
    for name, value in inputs.items():
        dtype = declared[name]
        if not isinstance(value, dict) or "data" not in value:
            raise ApiError(f"input {name!r} must be {{\"data\": [...], \"dtype\": \"{dtype.name}\"}}")
        if not _dtype_matches(value.get("dtype"), dtype):
            raise ApiError(f"input {name!r}: dtype must be {dtype.name}, the model's declared dtype")
        size = _leaves(value["data"], name) * dtype.itemsize
        total += size
        if size > tensor_limit or total > total_limit:
            raise ApiError(f"input {name!r} would take {size} bytes, more than the "
                           f"{tensor_limit if size > tensor_limit else total_limit} byte limit", 413)
        try:
            feeds[name] = np.asarray(value["data"], dtype=dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ApiError(f"input {name!r}: {str(exc).splitlines()[0][:200]}") from None
    return feeds


class Predict(APIView):
    """Audited inference over HTTP: {"inputs": {name: {"data": [...], "dtype": "float32"}}}."""

    parser_classes = [JSONParser]
    write_roles = (ENGINEER, ADMIN, SERVICE)

    def post(self, request, service):
        actor = actor_name(request.user)
        bound = bound_service(request)
        if has_role(request.user, SERVICE) and not has_role(request.user, ENGINEER, ADMIN) and bound != service:
            reason = f"the token of service {bound!r} cannot run predictions for service {service!r}"[:300]
            refuse(actor, "predict", f"service:{service}"[:200], reason, alert_kind="api.token_misused",
                   alert_subject=f"service:{bound}"[:128])
            raise ApiError(reason, status.HTTP_403_FORBIDDEN)
        if "\x00" in service or len(service) > 100 or not Deployment.objects.filter(service=service).exists():
            reason = f"no service {service[:100]!r} is deployed"
            refuse(actor, "predict", f"service:{service}"[:200], reason, alert_kind="api.unknown_service",
                   alert_subject="api:predict")
            raise ApiError(reason, status.HTTP_404_NOT_FOUND)
        check_length(request)
        data = request.data if isinstance(request.data, dict) else {}
        deployment = live_deployment(service)
        if deployment is not None:  # else the verified loader records the refusal below
            feeds = parse_feeds(data.get("inputs"), deployment.engine.build.model.inputs)
        try:
            audited = open_cached(service)
            if deployment is None or audited.deployment.id != deployment.id:
                feeds = parse_feeds(data.get("inputs"), audited.loaded.model_inputs)
            outputs, meta = audited.predict(feeds)
        except EngineRefused as exc:
            raise ApiError(str(exc), status.HTTP_409_CONFLICT, {"verdict": exc.verdict}) from None
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        return Response({"outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()}, "metadata": meta})

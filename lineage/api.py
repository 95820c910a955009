"""REST API (DRF): token auth for services and CI, session auth for the dashboard.
Errors are {"error": one line}; writes need the engineer or admin role."""
from __future__ import annotations

import numpy as np
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.api import ApiError
from compliance.ids import parse_inference_id
from compliance.roles import ADMIN, ENGINEER, SERVICE, actor_name
from inference import specs
from inference.loader import EngineRefused
from inference.runtime import AuditedService

from . import actions, queries
from .models import Build, Deployment, Engine, ModelSource
from .trace import trace


def _page(query, request, default: int = 50):
    try:
        limit = min(max(int(request.query_params.get("limit", default)), 1), 500)
    except ValueError:
        raise ApiError("limit must be an integer") from None
    return query[:limit]


class ModelList(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def get(self, request):
        return Response({"results": [m.to_dict() for m in _page(ModelSource.objects.all(), request)]})

    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("file is required (multipart field 'file' with the ONNX model)")
        data = request.data
        try:
            model, created = actions.do_register_model(
                upload, name=data.get("name") or upload.name.rsplit(".", 1)[0], repo=data.get("repo", ""),
                commit=data.get("commit", ""), registered_by=actor_name(request.user),
                training_run_url=data.get("training_run_url", ""), training_data_ref=data.get("training_data_ref", ""),
                training_data_sha256=data.get("training_data_sha256", ""),
            )
        except actions.ActionError as exc:
            raise ApiError(str(exc)) from None
        return Response(model.to_dict() | {"created": created},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ModelDetail(APIView):
    def get(self, request, ref):
        try:
            return Response(actions.get_model(ref).to_dict())
        except actions.ActionError as exc:
            raise ApiError(str(exc), 404) from None


class BuildList(APIView):
    parser_classes = [JSONParser]

    def get(self, request):
        query = Build.objects.select_related("engine").all()
        if request.query_params.get("status"):
            query = query.filter(status=request.query_params["status"])
        return Response({"results": [b.to_dict() for b in _page(query, request)]})

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        try:
            model = actions.get_model(data.get("model", ""))
            shapes = data.get("shapes") or []
            if not isinstance(shapes, list) or not all(isinstance(s, str) for s in shapes):
                raise ApiError("shapes must be a list of NAME=MIN:OPT:MAX strings")
            profiles = dict(specs.parse_profile(s) for s in shapes)
            build = actions.do_request_build(
                model, backend=str(data.get("backend", "onnxruntime")), precision=str(data.get("precision", "fp32")),
                profiles=profiles, submitter=actor_name(request.user), commit=str(data.get("commit", "")),
            )
        except (actions.ActionError, specs.SpecError) as exc:
            raise ApiError(str(exc)) from None
        return Response(build.to_dict(), status=status.HTTP_202_ACCEPTED)


class BuildDetail(APIView):
    def get(self, request, pk):
        build = Build.objects.filter(pk=pk).first()
        if build is None:
            raise ApiError(f"no build {pk}", 404)
        return Response(build.to_dict() | {"log": build.log})


class EngineDetail(APIView):
    def get(self, request, ref):
        try:
            engine = actions.get_engine(ref)
        except actions.ActionError as exc:
            raise ApiError(str(exc), 404) from None
        return Response(engine.to_dict() | {"manifest": engine.manifest})


class DeploymentList(APIView):
    parser_classes = [JSONParser]

    def get(self, request):
        query = Deployment.objects.all()
        if request.query_params.get("service"):
            query = query.filter(service=request.query_params["service"])
        return Response({"results": [d.to_dict() for d in _page(query, request)]})

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        try:
            deployment = actions.do_deploy(actions.get_engine(data.get("engine", "")), service=str(data.get("service", "")),
                                           environment=str(data.get("environment") or "production"),
                                           acting_user=actor_name(request.user))
        except actions.ActionError as exc:
            raise ApiError(str(exc)) from None
        return Response(deployment.to_dict(), status=status.HTTP_201_CREATED)


class Predict(APIView):
    """Audited inference over HTTP: {"inputs": {name: {"data": [...], "dtype": "float32"}}}."""

    parser_classes = [JSONParser]
    write_roles = (ENGINEER, ADMIN, SERVICE)

    def post(self, request, service):
        inputs = request.data.get("inputs") if isinstance(request.data, dict) else None
        if not isinstance(inputs, dict) or not inputs:
            raise ApiError("inputs must be an object of named tensors")
        feeds = {}
        for name, value in inputs.items():
            if not isinstance(value, dict) or "data" not in value:
                raise ApiError(f"input {name!r} must be {{\"data\": [...], \"dtype\": \"float32\"}}")
            try:
                feeds[name] = np.asarray(value["data"], dtype=np.dtype(str(value.get("dtype", "float32"))))
            except (TypeError, ValueError) as exc:
                raise ApiError(f"input {name!r}: {exc}") from None
        try:
            audited = AuditedService.open(service)
            outputs, meta = audited.predict(feeds)
        except EngineRefused as exc:
            raise ApiError(str(exc), status.HTTP_409_CONFLICT, {"verdict": exc.verdict}) from None
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        return Response({"outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()}, "metadata": meta})


class TraceDetail(APIView):
    def get(self, request, inference_id):
        try:
            iid = parse_inference_id(inference_id)
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        result = trace(iid)
        if result.prediction is None:
            raise ApiError(result.links[0].detail, 404)
        return Response(result.to_dict())


def _optional_int(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(f"{name} must be an integer") from None


class PredictionList(APIView):
    """GET ?deployment=&service=&since=&until=&input_digest=&after=<cursor>&limit= —
    newest first; `next` is the cursor of the following page (null on the last)."""

    def get(self, request):
        params = request.query_params
        limit = _optional_int(request, "limit")
        try:
            page = queries.predictions_page(
                deployment=_optional_int(request, "deployment"), service=params.get("service") or None,
                since=queries.parse_time(params["since"], "since") if params.get("since") else None,
                until=queries.parse_time(params["until"], "until") if params.get("until") else None,
                input_digest=params.get("input_digest") or None, after=params.get("after") or None,
                limit=50 if limit is None else limit,
            )
        except queries.QueryError as exc:
            raise ApiError(str(exc)) from None
        return Response({"results": [p.to_dict() for p in page.results], "next": page.next})


class EngineAt(APIView):
    """GET /api/v1/services/<service>/engine-at/?t=ISO8601[&environment=]"""

    def get(self, request, service):
        if not request.query_params.get("t"):
            raise ApiError("t is required: an ISO 8601 time such as 2026-11-26T10:00:00Z")
        try:
            moment = queries.parse_time(request.query_params["t"], "t")
            served = queries.engine_at(service, moment, request.query_params.get("environment") or None)
        except queries.QueryError as exc:
            raise ApiError(str(exc)) from None
        if not served:
            raise ApiError(f"no deployment of service {service!r} was live at {moment.isoformat()}", 404)
        return Response({"service": service, "t": moment.isoformat(), "served_by": [s.to_dict() for s in served]})


class EraseSalt(APIView):
    """POST {"reference": "<ticket id>"}: erase a prediction's input salt (admin)."""

    parser_classes = [JSONParser]
    write_roles = (ADMIN,)

    def post(self, request, inference_id):
        try:
            iid = parse_inference_id(inference_id)
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        data = request.data if isinstance(request.data, dict) else {}
        reference = data.get("reference", "")
        if not isinstance(reference, str):
            raise ApiError("reference must be a string")
        try:
            erased = actions.do_erase_input_salt(iid, acting_user=actor_name(request.user), reference=reference)
        except actions.ActionError as exc:
            raise ApiError(str(exc), 404 if "no prediction" in str(exc) else 400) from None
        return Response({"inference_id": str(iid), "erased": erased, "already_erased": not erased})

"""REST API (DRF): token auth for services and CI, session auth for the dashboard.
Errors are {"error": one line}; writes need the engineer or admin role."""
from __future__ import annotations

import json

from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.api.errors import ApiError
from compliance.api.paging import page_for_api
from compliance.api.parsers import JSONParser
from compliance.investigation.access import record_access
from compliance.lib.ids import parse_db_int, parse_inference_id
from compliance.lib.roles import ADMIN, actor_name
from compliance.web.ledger_status import inclusion_status
from inference import build_requests, specs
from inference import calibration as calibration_api
from lineage import actions, queries
from lineage.models import Build, Deployment, Engine, EngineLoad, ModelSource, Prediction
from lineage.trace import trace


class ModelList(APIView):
    parser_classes = [MultiPartParser, FormParser]
    query_params = {"cursor": "next_cursor of the previous page", "limit": "page size (1-500, default 50)"}

    def get(self, request):
        """List registered ONNX models, newest first."""
        return Response(page_for_api(ModelSource.objects.all(), request))

    def post(self, request):
        """Register an ONNX model (multipart: file, repo, commit, name)."""
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
        """One registered model, by id or sha256."""
        try:
            return Response(actions.get_model(ref).to_dict())
        except actions.ActionError as exc:
            raise ApiError(str(exc), 404) from None


class BuildList(APIView):
    parser_classes = [JSONParser]
    query_params = {"status": "build status", "backend": "onnxruntime or tensorrt", "precision": "fp32, fp16, bf16, int8",
                    "submitter": "who requested it", "model": "model id", "cursor": "next_cursor of the previous page",
                    "limit": "page size (1-500)"}

    def get(self, request):
        """List builds, newest first, filtered."""
        from compliance.web.builds import filter_builds

        try:
            query = filter_builds(request.query_params, Build.objects.select_related("engine"))
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        return Response(page_for_api(query, request))

    def post(self, request):
        """Request a build: {"model", "backend", "precision", "shapes": ["NAME=MIN:OPT:MAX"], "commit"}."""
        data = request.data if isinstance(request.data, dict) else {}
        try:
            model = actions.get_model(data.get("model", ""))
            shapes = data.get("shapes") or []
            if not isinstance(shapes, list) or not all(isinstance(s, str) for s in shapes):
                raise ApiError("shapes must be a list of NAME=MIN:OPT:MAX strings")
            profiles = dict(specs.parse_profile(s) for s in shapes)
            options = data.get("options") or {}
            if not isinstance(options, dict):
                raise ApiError("options must be an object")
            calibration = calibration_api.get_calibration(data["calibration"], model) if data.get("calibration") else None
            build = build_requests.do_request_build(
                model, backend=str(data.get("backend", "onnxruntime")), precision=str(data.get("precision", "fp32")),
                profiles=profiles, submitter=actor_name(request.user), commit=str(data.get("commit", "")),
                options=options, calibration=calibration,
            )
        except (actions.ActionError, specs.SpecError) as exc:
            raise ApiError(str(exc)) from None
        return Response(build.to_dict(), status=status.HTTP_202_ACCEPTED)


class BuildDetail(APIView):
    def get(self, request, pk):
        """One build: the full record, its stages, log and decoded attestation."""
        from compliance.web.builds import build_status_dict, decode_attestation

        build = Build.objects.filter(pk=pk).first()
        if build is None:
            raise ApiError(f"no build {pk}", 404)
        engine = build.engine if build.status == Build.SUCCEEDED and hasattr(build, "engine") else None
        attestation = decode_attestation(engine) if engine else None
        if attestation and attestation["statement"]:
            attestation["statement"] = json.loads(attestation["statement"])
        return Response(build.to_dict() | {"log": build.log, "options": build.options,
                                           "stages": build_status_dict(build)["stages"], "attestation": attestation})


class EngineList(APIView):
    query_params = {"cursor": "next_cursor of the previous page", "limit": "page size (1-500)"}

    def get(self, request):
        """List engines, newest first."""
        return Response(page_for_api(Engine.objects.all(), request))


class BuildCancel(APIView):
    parser_classes = [JSONParser]

    def post(self, request, pk):
        """Cancel a queued build: {"reason": "..."}; 409 once it has started."""
        build = Build.objects.filter(pk=pk).first()
        if build is None:
            raise ApiError(f"no build {pk}", 404)
        reason = request.data.get("reason", "") if isinstance(request.data, dict) else ""
        try:
            build = actions.do_cancel_build(build, acting_user=actor_name(request.user), reason=str(reason))
        except actions.ActionError as exc:
            raise ApiError(str(exc), status.HTTP_409_CONFLICT) from None
        return Response(build.to_dict())


class CalibrationList(APIView):
    """A model's calibration sets; POST uploads one (multipart field 'file', an .npz)."""

    parser_classes = [MultiPartParser, FormParser]

    def _model(self, ref):
        try:
            return actions.get_model(ref)
        except actions.ActionError as exc:
            raise ApiError(str(exc), 404) from None

    def get(self, request, ref):
        """A model's calibration sets, newest first."""
        model = self._model(ref)
        return Response(page_for_api(model.calibration_sets.all(), request))

    def post(self, request, ref):
        """Upload a calibration set (.npz of named input arrays, first axis = samples)."""
        model = self._model(ref)
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("file is required (multipart field 'file' with the .npz calibration set)")
        try:
            calibration, created = calibration_api.do_register_calibration(
                upload, model=model, name=request.data.get("name") or upload.name.rsplit(".", 1)[0],
                registered_by=actor_name(request.user))
        except actions.ActionError as exc:
            raise ApiError(str(exc)) from None
        return Response(calibration.to_dict() | {"created": created},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class EngineDetail(APIView):
    def get(self, request, ref):
        """One engine (id or sha256) with its manifest and a live signature check."""
        from compliance.web.builds import decode_attestation, layer_info

        try:
            engine = actions.get_engine(ref)
        except actions.ActionError as exc:
            raise ApiError(str(exc), 404) from None
        check = decode_attestation(engine)
        return Response(engine.to_dict() | {"manifest": engine.manifest, "metadata": engine.metadata,
                                            "layers": layer_info(engine),
                                            "verification": {"verdict": check["verdict"], "detail": check["detail"]}})


class EngineLoadList(APIView):
    query_params = {"engine": "engine id", "service": "service name", "verdict": "verified or a refusal verdict",
                    "refused": "true: refusals only", "cursor": "next_cursor of the previous page",
                    "limit": "page size (1-500)"}

    def get(self, request):
        """Every engine load attempt with its verdict, newest first."""
        params = request.query_params
        query = EngineLoad.objects.all()
        if params.get("engine"):
            try:
                engine = parse_db_int(params["engine"], "engine", minimum=1)
            except ValueError as exc:
                raise ApiError(f"{exc} (an engine id)") from None
            query = query.filter(deployment__engine_id=engine)
        if params.get("service"):
            query = query.filter(service=params["service"])
        if params.get("verdict"):
            query = query.filter(verdict=params["verdict"])
        if params.get("refused") in ("true", "1"):
            query = query.exclude(verdict=EngineLoad.VERIFIED)
        return Response(page_for_api(query, request, to_dict=EngineLoad.to_dict))


class DeploymentList(APIView):
    parser_classes = [JSONParser]
    query_params = {"service": "service name", "live": "true: live deployments only",
                    "cursor": "next_cursor of the previous page", "limit": "page size (1-500)"}

    def get(self, request):
        """Deployments, newest first: per service, which engine was live when."""
        query = Deployment.objects.all()
        if request.query_params.get("service"):
            query = query.filter(service=request.query_params["service"])
        if request.query_params.get("live") in ("true", "1"):
            query = query.filter(retired_at=None)
        return Response(page_for_api(query, request))

    def post(self, request):
        """Deploy an engine: {"engine": id or sha256, "service", "environment"}."""
        data = request.data if isinstance(request.data, dict) else {}
        try:
            deployment = actions.do_deploy(actions.get_engine(data.get("engine", "")), service=str(data.get("service", "")),
                                           environment=str(data.get("environment") or "production"),
                                           acting_user=actor_name(request.user))
        except actions.ActionError as exc:
            raise ApiError(str(exc)) from None
        return Response(deployment.to_dict(), status=status.HTTP_201_CREATED)


class TraceDetail(APIView):
    def get(self, request, inference_id):
        """The chain of one prediction with a verdict per link (the view goes to the access log)."""
        try:
            iid = parse_inference_id(inference_id)
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        result = trace(iid)
        if result.prediction is None:
            raise ApiError(result.links[0].detail, 404)
        record_access(actor_name(request.user), "trace.viewed", f"prediction:{iid}", detail=f"ok={result.ok} via=api")
        return Response(result.to_dict() | {"inclusion": inclusion_status(result.prediction.ledger_index)})


def prediction_dict(p: Prediction) -> dict:
    return p.ledger_payload() | {"service": p.deployment.service, "ledger_index": p.ledger_index}


class TraceSearch(APIView):
    query_params = {"input_digest": "64-hex input commitment", "service": "service name",
                    "since": "window start (ISO 8601)", "until": "window end (ISO 8601)",
                    "cursor": "next_cursor of the previous page", "limit": "page size (1-500)"}

    def get(self, request):
        """Find predictions by input digest or by service and time window, newest first."""
        from compliance.web.lineage import search_predictions

        params = request.query_params
        try:
            mode, query, _ = search_predictions({"digest": params.get("input_digest", ""), "service": params.get("service", ""),
                                                 "since": params.get("since", ""), "until": params.get("until", "")})
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        if not mode:
            raise ApiError("give input_digest, or service with since/until")
        return Response(page_for_api(query.select_related("deployment"), request, ("timestamp", "inference_id"),
                              to_dict=prediction_dict))


class LineageDetail(APIView):
    def get(self, request, pk):
        """A model source with its builds, engines, deployments and prediction counts."""
        from compliance.web.stats import prediction_counts

        model = ModelSource.objects.filter(pk=pk).first()
        if model is None:
            raise ApiError(f"no model {pk}", 404)
        builds = list(model.builds.select_related("engine").order_by("-id"))
        deployments = list(Deployment.objects.filter(engine__build__model=model).order_by("-id"))
        counts = prediction_counts([d.id for d in deployments])
        return Response({"model": model.to_dict(), "builds": [b.to_dict() for b in builds],
                         "engines": [b.engine.to_dict() for b in builds if b.status == Build.SUCCEEDED and hasattr(b, "engine")],
                         "deployments": [d.to_dict() | {"predictions": counts.get(d.id, 0)} for d in deployments]})


class Overview(APIView):
    def get(self, request):
        """Counts, ledger health and the overview's series."""
        from compliance.web import stats

        hourly = stats.predictions_per_hour()
        counts = stats.overview_counts(hourly=hourly)
        health = stats.ledger_health()
        checkpoint = health["checkpoint"]
        return Response({
            "counts": counts,
            "checkpoint": None if checkpoint is None else {"size": checkpoint["size"], "age_s": checkpoint["age_s"]},
            "last_verification": health["verification"],
            "predictions_per_hour": [{"hour": h, "service": s, "count": n} for h, s, n in hourly],
            "refused_loads_per_day": [{"day": d, "verdict": v, "count": n} for d, v, n in stats.refused_loads_per_day()],
        })


def _optional_int(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return parse_db_int(value, name)
    except ValueError as exc:
        raise ApiError(str(exc)) from None


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
    """POST {"reference": "<ticket id>"}: erase a prediction's input salt (admin); 409
    while a case holds the prediction under legal hold."""

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
        except actions.ErasureRefused as exc:
            raise ApiError(str(exc), status.HTTP_409_CONFLICT) from None
        except actions.ActionError as exc:
            raise ApiError(str(exc), 404 if "no prediction" in str(exc) else 400) from None
        linkable = Prediction.objects.get(inference_id=iid).outputs_linkable_without_salt
        return Response({"inference_id": str(iid), "erased": erased, "already_erased": not erased,
                         "outputs_still_linkable": linkable})

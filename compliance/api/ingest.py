"""Ingestion API for external inference servers (token auth, `service` role):

POST /api/v1/ingest/predictions/   {"records": [record, ...]}  → 200 {"received", "stored", "duplicates"}
POST /api/v1/ingest/engine-loads/  {attempt_id, service, deployment_id, verdict, ...} → 201 (200 if repeated)

Bad input gets a 4xx {"error": "<the first problem, naming the record>"} and stores
nothing.  The ingestion path is this request and the database: it does not go
through Redis or Celery, so a broker outage does not touch it.
"""
from __future__ import annotations

from django.conf import settings
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.api.errors import ApiError
from compliance.api.parsers import JSONParser
from compliance.api.tokens import ApiTokenAuthentication, bound_service
from compliance.lib.roles import SERVICE
from inference.provenance import ingest
from inference.provenance.writer import write_records


def _service_token_only(request) -> None:
    """Provenance comes from a service token bound to the service it names (the identity
    user is named after the service; ingest checks each record against it)."""
    if bound_service(request) != request.user.get_username():
        raise ApiError("only a service token may report provenance", status.HTTP_403_FORBIDDEN)


class IngestPredictions(APIView):
    # machines only: a missing or bad token is 401 (retry later), a token that may
    # not report this is 403 (the record is set aside by the client)
    authentication_classes = [ApiTokenAuthentication]
    parser_classes = [JSONParser]
    write_roles = (SERVICE,)

    def post(self, request):
        _service_token_only(request)
        try:
            records = ingest.parse_records(request.data, user=request.user,
                                           max_batch=settings.TRACELEDGER_INGEST_MAX_BATCH)
        except ingest.IngestError as exc:
            raise ApiError(str(exc), exc.status) from None
        result = write_records(records, actor=f"service:{request.user.get_username()}")
        return Response({"received": len(records), "stored": result.stored, "duplicates": result.duplicates})


class IngestEngineLoad(APIView):
    authentication_classes = [ApiTokenAuthentication]
    parser_classes = [JSONParser]
    write_roles = (SERVICE,)

    def post(self, request):
        _service_token_only(request)
        try:
            load, created = ingest.report_load(request.data, user=request.user)
        except ingest.IngestError as exc:
            raise ApiError(str(exc), exc.status) from None
        return Response(load.to_dict() | {"duplicate": not created},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

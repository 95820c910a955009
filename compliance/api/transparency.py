"""REST API of the ledger (DRF; any read role, session or token): the latest signed
checkpoint, inclusion and consistency proofs, the public keys, the last verification.
Every answer can be checked with the public keys alone (see compliance.ledger.proofs)."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.api.errors import ApiError
from compliance.ledger import proofs, witnesses
from compliance.lib.ids import parse_db_int, parse_inference_id
from compliance.lib.roles import READ_ROLES
from compliance.models import VerificationRun


def _int_param(request, name: str, required: bool = True) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(f"{name} is required")
        return None
    try:
        return parse_db_int(raw, name, minimum=0)
    except ValueError as exc:
        raise ApiError(str(exc)) from None


class _ProofView(APIView):
    def handle_exception(self, exc):
        if isinstance(exc, proofs.ProofError):
            exc = ApiError(str(exc), exc.status)
        return super().handle_exception(exc)


class LatestCheckpoint(_ProofView):
    def get(self, request):
        return Response(proofs.latest_checkpoint())


class InclusionProof(_ProofView):
    """?index=N or ?inference_id=UUID; proven against the latest checkpoint."""

    def get(self, request):
        if request.query_params.get("inference_id"):
            try:
                inference_id = parse_inference_id(request.query_params["inference_id"])
            except ValueError as exc:
                raise ApiError(str(exc)) from None
            return Response(proofs.inclusion_for_prediction(inference_id))
        index = _int_param(request, "index", required=False)
        if index is None:
            raise ApiError("give index=N or inference_id=UUID")
        return Response(proofs.inclusion_for_index(index))


class ConsistencyProof(_ProofView):
    """?old=M[&new=N]; N defaults to, and may not exceed, the latest checkpoint's size."""

    def get(self, request):
        return Response(proofs.consistency(_int_param(request, "old"), _int_param(request, "new", required=False)))


class PublicKeys(APIView):
    def get(self, request):
        # keys as the ledger registers them, and every key-table row that disagrees
        return Response({"keys": proofs.public_keys(), "key_table_differences": proofs.key_table_differences()})


class LatestVerification(APIView):
    def get(self, request):
        run = VerificationRun.objects.exclude(ok=None).order_by("-id").first()
        if run is None:
            raise ApiError("the ledger has not been verified yet", 404)
        return Response(run.to_dict())


class _WitnessView(APIView):
    """Witnesses on other hosts hand back what they signed.  The signature is what
    authenticates it (a registered witness key), so any reader's token may carry it."""

    write_roles = READ_ROLES

    def handle_exception(self, exc):
        if isinstance(exc, witnesses.WitnessError):
            exc = ApiError(str(exc))
        return super().handle_exception(exc)


class WitnessCosignatures(_WitnessView):
    """POST {"note": the checkpoint note with the witness's cosignature line}."""

    def post(self, request):
        note = request.data.get("note") if isinstance(request.data, dict) else None
        if not isinstance(note, str) or len(note) > 20000:
            raise ApiError("give note: the cosigned checkpoint note")
        cosig = witnesses.accept_cosignature(note)
        return Response(cosig.to_dict(), status=201)


class WitnessAlarms(_WitnessView):
    """POST {"report": {kind, message, size, cosigned_size, key_id, witness}, "signature"}."""

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        report, signature = data.get("report"), data.get("signature")
        if not isinstance(report, dict) or not isinstance(signature, str):
            raise ApiError("give report (an object) and signature (base64)")
        return Response({"alert": witnesses.accept_alarm(report, signature)}, status=201)


class WitnessStatus(APIView):
    def get(self, request):
        return Response(witnesses.status())

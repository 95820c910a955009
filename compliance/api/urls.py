"""The REST API (/api/v1/): the transparency endpoints anyone can check (checkpoint,
proofs, public keys), alerts, the ledger, cases and notification rules, the lineage
graph (models, builds, engines, deployments, trace, predictions), prediction and
erasure, and the ingestion endpoints of external inference servers."""
from django.urls import path

from compliance.api import ingest, investigation, lineage, predict, transparency

urlpatterns = [
    path("api/v1/ledger/checkpoint/", transparency.LatestCheckpoint.as_view(), name="api-ledger-checkpoint"),
    path("api/v1/ledger/proof/inclusion/", transparency.InclusionProof.as_view(), name="api-ledger-inclusion"),
    path("api/v1/ledger/proof/consistency/", transparency.ConsistencyProof.as_view(), name="api-ledger-consistency"),
    path("api/v1/ledger/keys/", transparency.PublicKeys.as_view(), name="api-ledger-keys"),
    path("api/v1/ledger/verification/", transparency.LatestVerification.as_view(), name="api-ledger-verification"),
    path("api/v1/overview/", lineage.Overview.as_view()),
    path("api/v1/models/", lineage.ModelList.as_view()),
    path("api/v1/models/<str:ref>/", lineage.ModelDetail.as_view()),
    path("api/v1/lineage/<int:pk>/", lineage.LineageDetail.as_view()),
    path("api/v1/models/<str:ref>/calibrations/", lineage.CalibrationList.as_view()),
    path("api/v1/builds/", lineage.BuildList.as_view()),
    path("api/v1/builds/<int:pk>/", lineage.BuildDetail.as_view()),
    path("api/v1/builds/<int:pk>/cancel/", lineage.BuildCancel.as_view()),
    path("api/v1/engines/", lineage.EngineList.as_view()),
    path("api/v1/engines/<str:ref>/", lineage.EngineDetail.as_view()),
    path("api/v1/loads/", lineage.EngineLoadList.as_view()),
    path("api/v1/deployments/", lineage.DeploymentList.as_view()),
    path("api/v1/services/<str:service>/predict/", predict.Predict.as_view()),
    path("api/v1/trace/", lineage.TraceSearch.as_view()),
    path("api/v1/trace/<str:inference_id>/", lineage.TraceDetail.as_view()),
    path("api/v1/predictions/", lineage.PredictionList.as_view()),
    path("api/v1/predictions/<str:inference_id>/erase-salt/", lineage.EraseSalt.as_view()),
    path("api/v1/services/<str:service>/engine-at/", lineage.EngineAt.as_view()),
    path("api/v1/alerts/", investigation.AlertList.as_view()),
    path("api/v1/alerts/<int:pk>/acknowledge/", investigation.AlertAcknowledge.as_view()),
    path("api/v1/ledger/entries/", investigation.LedgerEntryList.as_view()),
    path("api/v1/ledger/entries/<int:index>/", investigation.LedgerEntryDetail.as_view()),
    path("api/v1/ledger/verify/", investigation.LedgerVerify.as_view()),
    path("api/v1/ledger/verify/<int:pk>/", investigation.LedgerVerifyStatus.as_view()),
    path("api/v1/cases/", investigation.CaseList.as_view()),
    path("api/v1/cases/<int:pk>/", investigation.CaseDetail.as_view()),
    path("api/v1/cases/<int:pk>/notes/", investigation.CaseNoteCreate.as_view()),
    path("api/v1/cases/<int:pk>/decision/", investigation.CaseDecide.as_view()),
    path("api/v1/cases/<int:pk>/close/", investigation.CaseClose.as_view()),
    path("api/v1/notification-rules/", investigation.NotificationRuleList.as_view()),
    path("api/v1/notification-rules/<int:pk>/", investigation.NotificationRuleDetail.as_view()),
    path("api/v1/keys/", investigation.KeyList.as_view()),
    path("api/v1/ingest/predictions/", ingest.IngestPredictions.as_view()),
    path("api/v1/ingest/engine-loads/", ingest.IngestEngineLoad.as_view()),
]

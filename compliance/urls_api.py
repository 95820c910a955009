from django.urls import path

from compliance import api_ledger

urlpatterns = [
    path("api/v1/ledger/checkpoint/", api_ledger.LatestCheckpoint.as_view(), name="api-ledger-checkpoint"),
    path("api/v1/ledger/proof/inclusion/", api_ledger.InclusionProof.as_view(), name="api-ledger-inclusion"),
    path("api/v1/ledger/proof/consistency/", api_ledger.ConsistencyProof.as_view(), name="api-ledger-consistency"),
    path("api/v1/ledger/keys/", api_ledger.PublicKeys.as_view(), name="api-ledger-keys"),
    path("api/v1/ledger/verification/", api_ledger.LatestVerification.as_view(), name="api-ledger-verification"),
]

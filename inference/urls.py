from django.urls import path

from inference import api

urlpatterns = [
    path("api/v1/ingest/predictions/", api.IngestPredictions.as_view()),
    path("api/v1/ingest/engine-loads/", api.IngestEngineLoad.as_view()),
]

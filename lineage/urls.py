from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("trace/", views.trace_search, name="trace-search"),
    path("trace/<str:inference_id>/", views.trace_detail, name="trace"),
    path("api/v1/models/", api.ModelList.as_view()),
    path("api/v1/models/<str:ref>/", api.ModelDetail.as_view()),
    path("api/v1/builds/", api.BuildList.as_view()),
    path("api/v1/builds/<int:pk>/", api.BuildDetail.as_view()),
    path("api/v1/engines/<str:ref>/", api.EngineDetail.as_view()),
    path("api/v1/deployments/", api.DeploymentList.as_view()),
    path("api/v1/services/<str:service>/predict/", api.Predict.as_view()),
    path("api/v1/trace/<str:inference_id>/", api.TraceDetail.as_view()),
    path("api/v1/predictions/", api.PredictionList.as_view()),
    path("api/v1/predictions/<str:inference_id>/erase-salt/", api.EraseSalt.as_view()),
    path("api/v1/services/<str:service>/engine-at/", api.EngineAt.as_view()),
]

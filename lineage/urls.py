from django.urls import path

from . import api, build_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("trace/", views.trace_search, name="trace-search"),
    path("trace/<str:inference_id>/", views.trace_detail, name="trace"),
    path("lineage/", views.explorer, name="explorer"),
    path("lineage/models/<int:pk>/", views.explorer_model, name="explorer-model"),
    path("builds/", build_views.build_list, name="build-list"),
    path("builds/new/", build_views.build_new, name="build-new"),
    path("builds/<int:pk>/", build_views.build_detail, name="build-detail"),
    path("builds/<int:pk>/status.json", build_views.build_status, name="build-status"),
    path("engines/", build_views.engine_list, name="engine-list"),
    path("engines/<int:pk>/", build_views.engine_detail, name="engine-detail"),
    path("deployments/", build_views.deployment_list, name="deployment-list"),
    path("deployments/new/", build_views.deployment_new, name="deployment-new"),
    path("deployments/<str:service>/", build_views.deployment_service, name="deployment-service"),
    path("api/v1/overview/", api.Overview.as_view()),
    path("api/v1/models/", api.ModelList.as_view()),
    path("api/v1/models/<str:ref>/", api.ModelDetail.as_view()),
    path("api/v1/lineage/<int:pk>/", api.LineageDetail.as_view()),
    path("api/v1/builds/", api.BuildList.as_view()),
    path("api/v1/builds/<int:pk>/", api.BuildDetail.as_view()),
    path("api/v1/engines/", api.EngineList.as_view()),
    path("api/v1/engines/<str:ref>/", api.EngineDetail.as_view()),
    path("api/v1/loads/", api.EngineLoadList.as_view()),
    path("api/v1/deployments/", api.DeploymentList.as_view()),
    path("api/v1/services/<str:service>/predict/", api.Predict.as_view()),
    path("api/v1/trace/", api.TraceSearch.as_view()),
    path("api/v1/trace/<str:inference_id>/", api.TraceDetail.as_view()),
]

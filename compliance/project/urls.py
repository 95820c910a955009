from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from compliance import report_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("compliance.urls_api")),
    path("reports/prediction/<str:inference_id>/", report_views.report_export, name="report-export"),
    path("reports/case/<int:case_id>/", report_views.report_export_case, name="report-export-case"),
    path("reports/service/", report_views.report_export_service, name="report-export-service"),
    path("", include("lineage.urls")),
    path("", include("compliance.web_urls")),
    path("", include("inference.urls")),
]


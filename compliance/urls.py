from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from compliance import views as compliance_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("compliance.urls_api")),
    path("reports/prediction/<str:inference_id>/", compliance_views.report_export, name="report-export"),
    path("reports/case/<int:case_id>/", compliance_views.report_export_case, name="report-export-case"),
    path("reports/service/", compliance_views.report_export_service, name="report-export-service"),
    path("", include("lineage.urls")),
]

"""The dashboard's pages: overview, trace, lineage explorer, builds, engines and
deployments; alerts, the ledger, cases and notification rules; report exports;
/metrics and the API documentation pages."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from compliance.web import builds, investigation, lineage, reports

urlpatterns = [
    path("reports/prediction/<str:inference_id>/", reports.report_export, name="report-export"),
    path("reports/case/<int:case_id>/", reports.report_export_case, name="report-export-case"),
    path("reports/service/", reports.report_export_service, name="report-export-service"),
    path("", lineage.home, name="home"),
    path("trace/", lineage.trace_search, name="trace-search"),
    path("trace/<str:inference_id>/", lineage.trace_detail, name="trace"),
    path("trace/<str:inference_id>/erase-salt/", lineage.erase_salt, name="erase-salt"),
    path("lineage/", lineage.explorer, name="explorer"),
    path("lineage/models/<int:pk>/", lineage.explorer_model, name="explorer-model"),
    path("builds/", builds.build_list, name="build-list"),
    path("builds/new/", builds.build_new, name="build-new"),
    path("builds/<int:pk>/", builds.build_detail, name="build-detail"),
    path("builds/<int:pk>/status.json", builds.build_status, name="build-status"),
    path("engines/", builds.engine_list, name="engine-list"),
    path("engines/<int:pk>/", builds.engine_detail, name="engine-detail"),
    path("deployments/", builds.deployment_list, name="deployment-list"),
    path("deployments/new/", builds.deployment_new, name="deployment-new"),
    path("deployments/<str:service>/", builds.deployment_service, name="deployment-service"),
    path("alerts/", investigation.alert_list, name="alert-list"),
    path("alerts/<int:pk>/acknowledge/", investigation.alert_acknowledge, name="alert-acknowledge"),
    path("ledger/", investigation.ledger_list, name="ledger-list"),
    path("ledger/verify/", investigation.ledger_verify, name="ledger-verify"),
    path("ledger/<int:index>/", investigation.ledger_entry, name="ledger-entry"),
    path("cases/", investigation.case_list, name="case-list"),
    path("cases/open/", investigation.case_open, name="case-open"),
    path("cases/<int:pk>/", investigation.case_detail, name="case-detail"),
    path("cases/<int:pk>/note/", investigation.case_note, name="case-note"),
    path("cases/<int:pk>/decide/", investigation.case_decide, name="case-decide"),
    path("cases/<int:pk>/close/", investigation.case_close, name="case-close"),
    path("cases/<int:pk>/hold/", investigation.case_hold, name="case-hold"),
    path("cases/<int:pk>/hold/release/", investigation.case_hold_release, name="case-hold-release"),
    path("settings/notifications/", investigation.rule_list, name="rule-list"),
    path("settings/notifications/new/", investigation.rule_edit, name="rule-new"),
    path("settings/notifications/<int:pk>/", investigation.rule_edit, name="rule-edit"),
    path("settings/notifications/<int:pk>/delete/", investigation.rule_delete, name="rule-delete"),
    path("metrics", investigation.metrics_view, name="metrics"),
    path("api/docs/", investigation.api_docs, name="api-docs"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the split view serves Swagger UI's start-up script as a file: no inline script (CSP)
    path("api/docs/swagger/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-swagger"),
    path("api/docs/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

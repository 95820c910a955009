"""Pages and API of the compliance app: alerts, ledger, cases, notification rules,
/metrics, the OpenAPI schema and its docs."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from compliance import rest, views

urlpatterns = [
    path("alerts/", views.alert_list, name="alert-list"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
    path("ledger/", views.ledger_list, name="ledger-list"),
    path("ledger/verify/", views.ledger_verify, name="ledger-verify"),
    path("ledger/<int:index>/", views.ledger_entry, name="ledger-entry"),
    path("cases/", views.case_list, name="case-list"),
    path("cases/open/", views.case_open, name="case-open"),
    path("cases/<int:pk>/", views.case_detail, name="case-detail"),
    path("cases/<int:pk>/note/", views.case_note, name="case-note"),
    path("cases/<int:pk>/decide/", views.case_decide, name="case-decide"),
    path("cases/<int:pk>/close/", views.case_close, name="case-close"),
    path("settings/notifications/", views.rule_list, name="rule-list"),
    path("settings/notifications/new/", views.rule_edit, name="rule-new"),
    path("settings/notifications/<int:pk>/", views.rule_edit, name="rule-edit"),
    path("settings/notifications/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("metrics", views.metrics_view, name="metrics"),
    path("api/docs/", views.api_docs, name="api-docs"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/swagger/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-swagger"),
    path("api/docs/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/alerts/", rest.AlertList.as_view()),
    path("api/v1/alerts/<int:pk>/acknowledge/", rest.AlertAcknowledge.as_view()),
    path("api/v1/ledger/entries/", rest.LedgerEntryList.as_view()),
    path("api/v1/ledger/entries/<int:index>/", rest.LedgerEntryDetail.as_view()),
    path("api/v1/ledger/verify/", rest.LedgerVerify.as_view()),
    path("api/v1/cases/", rest.CaseList.as_view()),
    path("api/v1/cases/<int:pk>/", rest.CaseDetail.as_view()),
    path("api/v1/cases/<int:pk>/notes/", rest.CaseNoteCreate.as_view()),
    path("api/v1/cases/<int:pk>/decision/", rest.CaseDecide.as_view()),
    path("api/v1/cases/<int:pk>/close/", rest.CaseClose.as_view()),
    path("api/v1/notification-rules/", rest.NotificationRuleList.as_view()),
    path("api/v1/notification-rules/<int:pk>/", rest.NotificationRuleDetail.as_view()),
    path("api/v1/keys/", rest.KeyList.as_view()),
]

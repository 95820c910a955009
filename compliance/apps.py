from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        from compliance import tasks  # noqa: F401  (registered here, so tasks sent by name run eagerly too)
        from compliance.investigation.alerts import on_security_event
        from compliance.ledger.events import security_event
        from compliance.project import celery  # noqa: F401  (binds shared tasks to our app)

        security_event.connect(on_security_event, dispatch_uid="compliance.investigation.alerts")

        from axes.signals import user_locked_out

        from compliance.web.lockout import on_user_locked_out

        user_locked_out.connect(on_user_locked_out, dispatch_uid="compliance.web.lockout")

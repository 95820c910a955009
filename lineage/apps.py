from django.apps import AppConfig


class LineageConfig(AppConfig):
    name = "lineage"

    def ready(self) -> None:
        from compliance.ledger import ledger
        from lineage.models import Prediction

        ledger.register_own_index("prediction:", Prediction.entry_index_of)

"""OpenAPI generation for our plain APIViews: bodies are JSON objects built by the
models' to_dict(), so a view without a serializer is documented as taking and
returning a JSON object; its query parameters come from a `query_params` mapping and
its summary from the first line of the handler's (or the class's) docstring."""
from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.generics import GenericAPIView


class TraceLedgerSchema(AutoSchema):
    def _get_serializer(self):
        view = self.view
        if (not isinstance(view, GenericAPIView) and not hasattr(view, "serializer_class")
                and not callable(getattr(view, "get_serializer", None))):
            return OpenApiTypes.OBJECT
        return super()._get_serializer()

    def get_summary(self):
        handler = getattr(self.view, self.method.lower(), None)
        doc = (getattr(handler, "__doc__", None) or type(self.view).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else None

    def get_override_parameters(self):
        params = list(super().get_override_parameters())
        if self.method == "GET":
            for name, description in getattr(self.view, "query_params", {}).items():
                params.append(OpenApiParameter(name, str, OpenApiParameter.QUERY, description=description))
        return params

    def get_operation_id(self):
        operation_id = super().get_operation_id()
        if self.method == "GET" and not self.path.rstrip("/").endswith("}") and operation_id.endswith("_retrieve"):
            operation_id = operation_id[: -len("_retrieve")] + "_list"
        return operation_id

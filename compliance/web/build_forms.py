"""Dashboard forms: request a build, deploy an engine.  They validate everything the
actions would refuse, so that each error is shown next to the field it is about."""
from __future__ import annotations

import os
import tempfile

from django import forms
from django.conf import settings

from inference import specs
from inference.backends import BACKENDS
from inference.backends.base import PRECISIONS
from lineage import onnx_model, validators
from lineage.models import Build, Engine, ModelSource


def parse_shapes(text: str) -> dict:
    profiles = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            name, profile = specs.parse_profile(line)
        except specs.SpecError as exc:
            raise forms.ValidationError(f"line {number}: {exc}") from None
        if name in profiles:
            raise forms.ValidationError(f"line {number}: input {name!r} is given twice")
        profiles[name] = profile
    return profiles


def _describe_upload(upload) -> dict:
    """The ONNX model's metadata (inputs…), read from the upload before anything is
    stored; raises ValidationError for a file that is not a valid ONNX model."""
    if upload.size > settings.TRACELEDGER_MAX_UPLOAD_BYTES:
        raise forms.ValidationError(f"the file is larger than {settings.TRACELEDGER_MAX_UPLOAD_BYTES} bytes")
    if upload.size == 0:
        raise forms.ValidationError("the file is empty: not an ONNX model")
    path = getattr(upload, "temporary_file_path", lambda: None)()
    cleanup = None
    if path is None:
        fd, cleanup = tempfile.mkstemp(suffix=".onnx")
        with os.fdopen(fd, "wb") as f:
            for chunk in upload.chunks():
                f.write(chunk)
        path = cleanup
    try:
        return onnx_model.describe(path)
    except onnx_model.InvalidModel as exc:
        raise forms.ValidationError(str(exc)) from None
    finally:
        upload.seek(0)
        if cleanup:
            os.unlink(cleanup)


class BuildRequestForm(forms.Form):
    model = forms.ModelChoiceField(ModelSource.objects.all(), required=False, empty_label="— upload a new ONNX model —",
                                   help_text="a registered model, or upload one below")
    onnx_file = forms.FileField(required=False, label="ONNX file",
                                widget=forms.ClearableFileInput(attrs={"accept": ".onnx"}))
    name = forms.CharField(required=False, max_length=200, validators=[validators.validate_model_name],
                           help_text="name of the uploaded model")
    repo = forms.CharField(required=False, max_length=500, validators=[validators.validate_repo],
                           help_text="git repository of the uploaded model")
    commit = forms.CharField(required=False, max_length=64,
                             help_text="git commit the model (upload) or the build comes from")
    backend = forms.ChoiceField(choices=[(b, b) for b in BACKENDS], initial="onnxruntime")
    precision = forms.ChoiceField(choices=[(p, p) for p in PRECISIONS], initial="fp32")
    shapes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "placeholder": "x=1x3x64x64:1x3x224x224:8x3x512x512"}),
                             help_text="one NAME=MIN:OPT:MAX per line (dynamic inputs)")
    calibration = forms.FileField(required=False, label="Calibration set (.npz)",
                                  help_text="INT8 only: representative inputs, one array per model input")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def clean_shapes(self):
        return parse_shapes(self.cleaned_data.get("shapes", ""))

    def clean_commit(self):
        commit = self.cleaned_data.get("commit", "").strip().lower()
        if commit:
            validators.validate_commit(commit)
        return commit

    def clean(self):
        data = super().clean()
        model, upload = data.get("model"), data.get("onnx_file")
        if model and upload:
            self.add_error("onnx_file", "pick a registered model or upload one, not both")
            return data
        if not model and not upload:
            if "onnx_file" not in self.errors:
                self.add_error("model", "pick a registered model or upload an ONNX file")
            return data
        inputs = model.inputs if model else None
        if upload:
            for field in ("repo", "commit"):
                if not data.get(field):
                    self.add_error(field, f"{field} is required for an uploaded model")
            try:
                inputs = _describe_upload(upload)["inputs"]
            except forms.ValidationError as exc:
                self.add_error("onnx_file", exc)
                return data
        if "shapes" in self.errors or inputs is None:
            return data
        try:
            specs.validate(inputs, backend=data.get("backend", ""), precision=data.get("precision", ""),
                           profiles=data.get("shapes") or {})
        except specs.SpecError as exc:
            message = str(exc)
            field = ("backend" if "backend" in message.split(";")[0] and "precision" not in message
                     else "precision" if "precision" in message.split(";")[0] else "shapes")
            self.add_error(field, message)
        if data.get("calibration") and data.get("precision") != "int8":
            self.add_error("calibration", "a calibration set is used only for int8 builds")
        return data


class DeployForm(forms.Form):
    engine = forms.ModelChoiceField(
        Engine.objects.filter(usable=True, build__status=Build.SUCCEEDED).select_related("build__model"))
    service = forms.CharField(max_length=100, validators=[validators.validate_service_name])
    environment = forms.CharField(max_length=50, initial="production", validators=[validators.validate_environment])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["engine"].label_from_instance = (
            lambda e: f"engine {e.id} · {e.build.model.name} · {e.backend}/{e.precision} · {e.sha256[:12]}…")

from __future__ import annotations

from django import forms
from django.core.validators import validate_email

from compliance.investigation import webhooks
from compliance.models import Alert, Case, NotificationRule


class AcknowledgeForm(forms.Form):
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "what was checked or done"}))


class OpenCaseForm(forms.Form):
    inference_id = forms.UUIDField(widget=forms.HiddenInput)
    kind = forms.ChoiceField(choices=Case.KINDS)
    summary = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "why the decision is contested or reviewed"}))
    legal_hold = forms.BooleanField(required=False, help_text="keep every record of this prediction from erasure")
    hold_reason = forms.CharField(required=False, max_length=1000)


class HoldForm(forms.Form):
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "why (litigation, regulator request, ticket)"}))


class EraseSaltForm(forms.Form):
    reference = forms.CharField(required=False, max_length=100, help_text="ticket id of the erasure request (no personal data)")


class CaseNoteForm(forms.Form):
    text = forms.CharField(label="Note", max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class DecideCaseForm(forms.Form):
    outcome = forms.ChoiceField(choices=Case.OUTCOMES, widget=forms.RadioSelect)
    reason = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="the reviewer's reasons, as they will be given to the data subject")


class CloseCaseForm(forms.Form):
    note = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class NotificationRuleForm(forms.ModelForm):
    webhook_url = forms.URLField(required=False, max_length=500, assume_scheme="https",
                                 help_text="receives a signed POST for each matching alert")
    class Meta:
        model = NotificationRule
        fields = ["name", "kind_pattern", "min_severity", "emails", "webhook_url", "enabled"]
        widgets = {"emails": forms.Textarea(attrs={"rows": 3, "placeholder": "oncall@example.com"})}
        help_texts = {"kind_pattern": "alert kind, shell-style: engine.load_refused, build.*, *"}

    def clean_kind_pattern(self):
        pattern = self.cleaned_data["kind_pattern"].strip()
        if not pattern or not all(c.isalnum() or c in "._*?-[]" for c in pattern):
            raise forms.ValidationError("letters, digits and . _ - * ? [ ] only")
        return pattern

    def clean_emails(self):
        lines = [line.strip() for line in self.cleaned_data["emails"].splitlines() if line.strip()]
        for line in lines:
            try:
                validate_email(line)
            except forms.ValidationError:
                raise forms.ValidationError(f"{line!r} is not an e-mail address") from None
        return "\n".join(lines)

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        if url:
            try:
                webhooks.check_url(url)
            except webhooks.WebhookRefused as exc:
                raise forms.ValidationError(str(exc)) from None
        return url

    def clean(self):
        data = super().clean()
        if not data.get("emails") and not data.get("webhook_url") and not self.errors:
            raise forms.ValidationError("give at least one e-mail address or a webhook URL")
        return data


SEVERITY_CHOICES = [("", "any severity")] + list(Alert.SEVERITIES)

"""Forms send the browser back only to a path on our own host."""
from __future__ import annotations

import pytest

from compliance.investigation.alerts import raise_alert
from compliance.models import Alert

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "http://testserver.evil.example/",
                                    "javascript:alert(1)", "\\\\evil.example", "/\\evil.example", "https:evil.example",
                                    " //evil.example", "/alerts/\x00"])
def test_acknowledging_an_alert_never_redirects_off_site(client, bob, target):
    client.force_login(bob)
    alert = raise_alert("build.failed", "build 1 failed", subject="build:1")
    r = client.post(f"/alerts/{alert.id}/acknowledge/", {"note": "checked", "next": target})
    if "\x00" in target:  # the input guard refuses a NUL byte in any field before the view runs
        assert r.status_code == 400 and Alert.objects.get(pk=alert.id).acknowledged_by in ("", None)
        return
    assert r.status_code == 302 and r["Location"] == "/alerts/"
    assert Alert.objects.get(pk=alert.id).acknowledged_by == "bob"


def test_a_next_on_our_own_host_is_kept(client, bob):
    client.force_login(bob)
    alert = raise_alert("build.failed", "build 1 failed", subject="build:1")
    r = client.post(f"/alerts/{alert.id}/acknowledge/", {"note": "checked", "next": "/alerts/?severity=critical"})
    assert r.status_code == 302 and r["Location"] == "/alerts/?severity=critical"

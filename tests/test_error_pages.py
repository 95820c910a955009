"""Error pages that say what happened and what to do, in the dashboard's layout."""
from __future__ import annotations

import pytest
from django.template.loader import render_to_string

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_it_explains_a_403_in_words(client, dave):
    client.force_login(dave)
    response = client.get("/builds/")
    page = response.content.decode()
    assert response.status_code == 403
    assert "Your role does not allow this" in page and "dave" in page and "with no role" in page


def test_it_renders_a_friendly_404_when_debug_is_off(client, alice, settings):
    settings.DEBUG = False
    client.force_login(alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and "Nothing here" in response.content.decode()
    missing = client.get("/trace/0190f2c4-7b1a-7c3e-9d2f-0123456789ab/")
    assert missing.status_code == 404 and "No such prediction" in missing.content.decode()


def test_it_has_a_standalone_500_page():
    page = render_to_string("500.html")
    assert "Something went wrong on our side" in page and "{%" not in page

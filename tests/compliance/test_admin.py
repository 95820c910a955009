"""The admin shows the ledger and the key registry but cannot change them."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User

from compliance.ledger import checkpoints, ledger
from compliance.models import Checkpoint, LedgerEntry, MerkleNode, SigningKey, VerificationRun, WitnessCosignature

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_the_admin_is_read_only_for_the_ledger(client, settings, tmp_path, rf):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path
    ledger.append("trace.viewed", {"n": 1})
    checkpoint = checkpoints.make_checkpoint()
    root = User.objects.create_superuser("root", "root@example.com", "correct-horse-battery-staple")
    request = rf.get("/admin/")
    request.user = root
    for model in (LedgerEntry, MerkleNode, Checkpoint, WitnessCosignature, SigningKey, VerificationRun):
        model_admin = admin.site._registry[model]
        assert model_admin.has_view_permission(request)
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)

    client.force_login(root)
    assert client.get("/admin/compliance/ledgerentry/").status_code == 200
    assert client.get("/admin/compliance/ledgerentry/add/").status_code == 403
    page = client.get(f"/admin/compliance/checkpoint/{checkpoint.id}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(f"/admin/compliance/checkpoint/{checkpoint.id}/change/", {"note": "x"}).status_code == 403
    assert client.post(f"/admin/compliance/ledgerentry/{0}/delete/", {"post": "yes"}).status_code == 403
    assert Checkpoint.objects.get().note == checkpoint.note and LedgerEntry.objects.filter(index=0).exists()

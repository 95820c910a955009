"""The admin shows the ledger but cannot change it: entries, Merkle nodes, checkpoints
and cosignatures are append-only, and keys change only through `manage.py keys`
(which writes the ledger entries a change needs)."""
from django.contrib import admin

from compliance.models import (
    Checkpoint,
    LedgerEntry,
    MerkleNode,
    SigningKey,
    VerificationRun,
    WitnessCosignature,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["index", "kind", "subject", "created_at"]
    list_filter = ["kind"]
    search_fields = ["subject"]
    show_full_result_count = False


@admin.register(MerkleNode)
class MerkleNodeAdmin(ReadOnlyAdmin):
    list_display = ["id", "level", "index"]
    show_full_result_count = False


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["id", "size", "root_hash", "key_id", "created_at"]


@admin.register(WitnessCosignature)
class WitnessCosignatureAdmin(ReadOnlyAdmin):
    list_display = ["id", "checkpoint", "witness", "key_id", "timestamp"]


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ["key_id", "purpose", "created_at", "retired_at", "revoked_at"]
    list_filter = ["purpose"]


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "mode", "ok", "first_bad_index", "checked_upto", "started_at", "finished_at"]


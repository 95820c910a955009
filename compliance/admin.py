"""The admin shows the ledger but cannot change it: entries, Merkle nodes, checkpoints
and cosignatures are append-only, and keys change only through `manage.py keys`
(which writes the ledger entries a change needs)."""
from django.contrib import admin

from compliance.models import (
    AccessRecord,
    ApiToken,
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


@admin.register(AccessRecord)
class AccessRecordAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "action", "target", "outcome", "detail"]
    list_filter = ["action", "outcome"]
    search_fields = ["actor", "target"]
    show_full_result_count = False


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are issued and revoked with `manage.py tokens` (ledger entries); only their hash is kept."""

    list_display = ["id", "prefix", "user", "service", "expires_at", "revoked_at", "last_used_at", "use_count"]
    exclude = ["key_hash"]

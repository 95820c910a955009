#!/usr/bin/env bash
# Restore a backup made by deploy/backup.sh into a new, empty database, then check the
# restored copy: every ledger entry, Merkle node and checkpoint signature (verify_ledger,
# and against an auditor's trust file with TRACELEDGER_TRUST_FILE), and every file the
# database names in the store (verify_store). Exit 0 only when all of it passes.
#
#   deploy/restore.sh BACKUP_DIR
#
# Environment: DATABASE_URL (the new database, as its owner: the restore runs the
# migrations' triggers as that role), TRACELEDGER_STORE_DIR, TRACELEDGER_CHECKPOINT_DIR
# (or TRACELEDGER_HOME), TRACELEDGER_APP_ROLE (re-grant the application role's rights,
# e.g. traceledger_app), PYTHON. Restore with the release that made the backup, then migrate.
set -euo pipefail

backup=${1:?usage: deploy/restore.sh BACKUP_DIR}
app_dir=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
: "${DATABASE_URL:?DATABASE_URL must name the new, empty database}"
home=${TRACELEDGER_HOME:-$app_dir/var}
store=${TRACELEDGER_STORE_DIR:-$home/store}
checkpoints=${TRACELEDGER_CHECKPOINT_DIR:-$home/checkpoints}
manage() { (cd "$app_dir" && "$python" manage.py "$@"); }

echo "checking the backup's checksums"
(cd "$backup" && sha256sum --check --quiet manifest.sha256) || { echo "backup damaged: checksums do not match" >&2; exit 1; }

tables=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ "$tables" != 0 ]; then
    echo "refusing to restore into a database that has tables: create a new one" >&2
    exit 1
fi

echo "restoring the database"
pg_restore --no-owner --no-acl --exit-on-error --single-transaction --dbname="$DATABASE_URL" "$backup/database.dump"
if [ -n "${TRACELEDGER_APP_ROLE:-}" ]; then
    manage shell -c "from compliance.ledger.dbguards import app_role_sql
print(';\n'.join(app_role_sql('$TRACELEDGER_APP_ROLE')) + ';')" | psql "$DATABASE_URL" --set ON_ERROR_STOP=1 -q
fi

echo "restoring the store and the checkpoint files"
mkdir -p "$store" "$checkpoints"
tar --extract --file="$backup/store.tar" --directory="$store" --skip-old-files
cp -p -R "$backup/checkpoints/." "$checkpoints/"

echo "verifying the restored copy"
manage migrate --check --noinput >/dev/null || { echo "the restored database needs migrations: run manage.py migrate, then verify_ledger" >&2; exit 1; }
if [ -n "${TRACELEDGER_TRUST_FILE:-}" ]; then
    manage verify_ledger --trust "$TRACELEDGER_TRUST_FILE"
else
    manage verify_ledger
fi
manage verify_store
echo "restored and verified: $backup"

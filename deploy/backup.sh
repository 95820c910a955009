#!/usr/bin/env bash
# Back up a TraceLedger deployment: the database, the artifact store, the exported
# checkpoints and the public keys, with a checksum manifest.
#
#   deploy/backup.sh DEST_DIR        -> DEST_DIR/traceledger-<UTC time>/
#
# Environment (as for the app): DATABASE_URL (a role that can read every table: the owner),
# TRACELEDGER_STORE_DIR, TRACELEDGER_CHECKPOINT_DIR (or TRACELEDGER_HOME), PYTHON.
# The database is dumped first and the store copied after: the store only ever gains
# files, and a file is in the store before the row that names it commits, so every file
# the dump names is in the copy. Private keys are not copied: they live in the secret
# store, which has its own backup; a lost private key is rotated, and what it signed
# still verifies with the public keys kept here and in the database.
set -euo pipefail

dest_root=${1:?usage: deploy/backup.sh DEST_DIR}
app_dir=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
: "${DATABASE_URL:?DATABASE_URL must name the database to back up}"
home=${TRACELEDGER_HOME:-$app_dir/var}
store=${TRACELEDGER_STORE_DIR:-$home/store}
checkpoints=${TRACELEDGER_CHECKPOINT_DIR:-$home/checkpoints}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$dest_root/traceledger-$stamp"
mkdir -p "$out"
chmod 700 "$out"

pg_dump --format=custom --compress=6 --file="$out/database.dump" "$DATABASE_URL"
mkdir -p "$store"
tar --create --file="$out/store.tar" --directory="$store" --exclude=./tmp .
mkdir -p "$out/checkpoints"
if [ -d "$checkpoints" ]; then
    cp -pR "$checkpoints/." "$out/checkpoints/"
fi
(cd "$app_dir" && "$python" manage.py keys list --json) > "$out/public-keys.json"
printf '{"created": "%s", "pg_dump": "%s"}\n' "$stamp" "$(pg_dump --version)" > "$out/backup.json"
(cd "$out" && find . -type f ! -name manifest.sha256 -print0 | sort -z | xargs -0 sha256sum > manifest.sha256)
echo "$out"

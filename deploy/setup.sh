#!/usr/bin/env bash
# One-off, before the first start and after each upgrade: migrations as the owner role,
# the application role's grants (README, "a role that can only read and append"), and the
# signing keys of the purposes named in TRACELEDGER_SETUP_KEYS where their files are missing.
#
# Environment: DATABASE_URL (the owner role), TRACELEDGER_APP_ROLE (default traceledger_app),
# TRACELEDGER_SETUP_KEYS (default "ledger webhook"), PYTHON.
set -euo pipefail
app_dir=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
role=${TRACELEDGER_APP_ROLE:-traceledger_app}
cd "$app_dir"

"$python" manage.py migrate --noinput
"$python" manage.py shell -c "from compliance.ledger.dbguards import app_role_sql
print(';\n'.join(app_role_sql('$role')) + ';')" | psql "$DATABASE_URL" --set ON_ERROR_STOP=1 -q
# shellcheck disable=SC2086
"$python" manage.py keys init --purpose ${TRACELEDGER_SETUP_KEYS:-ledger webhook}

#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory: the owner role that runs
# migrations and owns the tables, and the application role that will only read and append.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE traceledger_owner LOGIN PASSWORD '${TRACELEDGER_OWNER_PASSWORD}';
CREATE ROLE traceledger_app LOGIN PASSWORD '${TRACELEDGER_APP_PASSWORD}';
CREATE DATABASE traceledger OWNER traceledger_owner;
SQL

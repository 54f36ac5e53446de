#!/usr/bin/env bash
# Runs once, when the postgres volume is created: the two databases of the store, owned by the
# application user. Optuna and MLflow must not share one (their Alembic version tables collide).
set -euo pipefail
for suffix in optuna mlflow; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE ${ONECYCLE_DB_PREFIX}_${suffix} OWNER ${POSTGRES_USER}"
done

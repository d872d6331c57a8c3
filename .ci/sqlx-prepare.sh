#!/usr/bin/env bash
# Regenerates both stores' offline query data, or with --check verifies it (CI):
#   .sqlx/                 the router's statements, prepared against SQLite;
#   store-postgres/.sqlx/  the PostgreSQL store's statements, prepared against PostgreSQL.
# `cargo sqlx prepare` compiles with one DATABASE_URL, so each store is prepared on its own,
# against a scratch database migrated from its tree: first the PostgreSQL crate (in its
# directory, so nothing else compiles against PostgreSQL), then everything offline, then the
# router against SQLite. That pass rebuilds only the router, and must find the PostgreSQL
# crate (a dependency of its tests) already built: it cannot compile against SQLite.
# Needs sqlx-cli, and PostgreSQL (TEST_POSTGRES_URL, else a throwaway cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=()
[ "${1:-}" = --check ] && mode=(--check)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"; declare -F pg_stop >/dev/null && pg_stop' EXIT
if [ -z "${TEST_POSTGRES_URL:-}" ]; then
  source .ci/postgres.sh
fi

echo "== the PostgreSQL store's statements, against PostgreSQL (migrations/postgres/)"
(
  unset SQLX_OFFLINE
  export DATABASE_URL="${TEST_POSTGRES_URL%/*}/sqlx_prepare_$$"
  cd store-postgres
  cargo sqlx database setup --source ../migrations/postgres >/dev/null
  cargo sqlx prepare "${mode[@]}" -- --all-targets
  cargo sqlx database drop -y >/dev/null
)

echo "== everything, offline first (the router may fail here when its .sqlx/ is stale)"
SQLX_OFFLINE=true cargo check --workspace --all-targets --keep-going --quiet || true

echo "== the router's statements, against SQLite (migrations/sqlite/)"
(
  unset SQLX_OFFLINE
  export DATABASE_URL="sqlite://$scratch/sqlx.db"
  cargo sqlx database setup --source migrations/sqlite >/dev/null
  cargo sqlx prepare "${mode[@]}" -- --all-targets
)

#!/usr/bin/env bash
# The PostgreSQL benchmark in one command: builds the release binaries, installs wrk
# (Debian's) when missing, starts a throwaway PostgreSQL (.ci/postgres.sh) and prints a
# Markdown table: one router on SQLite, one on PostgreSQL, two on one PostgreSQL database.
# BENCH_SECS sets each wrk run's length (default 10). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
SQLX_OFFLINE=true cargo build --release -p claude-auth-router -p claude-auth-router-bench --bin claude-auth-router --bin pg_bench
if [ -z "${TEST_POSTGRES_URL:-}" ]; then
  source .ci/postgres.sh
  trap pg_stop EXIT
fi
target/release/pg_bench

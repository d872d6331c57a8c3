#!/usr/bin/env bash
# The load benchmark in one command: builds the release binary and the bench driver,
# installs wrk (Debian's) when missing, and prints a Markdown report with every scenario as a
# ratio of a minimal axum server measured in the same run. BENCH_SECS sets each run's length
# (default 10). Everything runs on loopback against processes this script starts.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
SQLX_OFFLINE=true cargo build --release -p claude-auth-router -p claude-auth-router-bench --bin claude-auth-router --bin bench
exec target/release/bench

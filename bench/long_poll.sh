#!/usr/bin/env bash
# The long-poll benchmark: 10,000 waiters (peak memory), 1,000 approvals in a burst (commit to
# answer latency), and 1,000 clients long-polling versus interval-polling (polls per second).
# Builds the release binary and the driver; everything runs on loopback against processes
# this script starts. Takes about two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
SQLX_OFFLINE=true cargo build --release -p claude-auth-router -p claude-auth-router-bench --bin claude-auth-router --bin long_poll_bench
exec target/release/long_poll_bench

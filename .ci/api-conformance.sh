#!/usr/bin/env bash
# The OpenAPI document, checked by tools nobody here wrote: openapi-spec-validator on the
# document, then Schemathesis over every operation of a running router on the fake provider,
# with the admin token, the submit token and a fresh request's poll token. It fails (never
# skips) when a tool is missing or cannot be installed. Run by .ci/run after `cargo test`,
# which builds the binaries it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/api-conformance-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "4.32.5" \
  || ! "$venv/bin/openapi-spec-validator" --help >/dev/null 2>&1; then
  echo "== installing schemathesis and openapi-spec-validator (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5" "openapi-spec-validator==0.9.0"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
router_port=$(free_port)
fake_port=$(free_port)
export ADMIN=admin-token-for-the-conformance-run-0123456789
export SUBMIT=submit-token-for-the-conformance-run-0123456789
cat >"$work/config.toml" <<TOML
bind_addr = "127.0.0.1:$router_port"
database_url = "sqlite://$work/router.db"

[requests]
poll_interval_secs = 0
max_wait_secs = 1

[oauth]
client_id = "conformance"
auth_url = "http://127.0.0.1:$fake_port/authorize"
token_url = "http://127.0.0.1:$fake_port/token"
revocation_url = "http://127.0.0.1:$fake_port/revoke"
redirect_uri = "http://127.0.0.1:$router_port/oauth/callback"

[control_browser]
base_url = "http://127.0.0.1:$fake_port"
submit_token = "$SUBMIT"

[admin]
token = "$ADMIN"

[limits]
creates_per_minute_per_ip = 0
max_open_requests_per_client = 0
failed_sign_ins_per_minute_per_ip = 0

[[accounts]]
id = 1
label = "one"

[[accounts]]
id = 2
label = "two"
TOML

target/debug/fake-upstream --listen "127.0.0.1:$fake_port" --mode record >"$work/fake.log" 2>&1 &
pids+=($!)
target/debug/claude-auth-router serve --config "$work/config.toml" >"$work/router.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$router_port"
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || { cat "$work/router.log"; exit 1; }

echo "== openapi-spec-validator"
curl -fsS "$base/v1/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

echo "== schemathesis over every operation"
created=$(curl -fsS -X POST "$base/v1/token-requests" -H 'content-type: application/json' \
  -d '{"client_name": "conformance", "hostname": "ci"}')
POLL=$(jq -r .poll_token <<<"$created")
REQUEST_ID=$(jq -r .request_id <<<"$created")
export POLL REQUEST_ID
"$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run "$base/v1/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples 50 --seed 1 --no-color

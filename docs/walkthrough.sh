#!/usr/bin/env bash
# The README's walkthrough, as one script: every `sh` block in README.md and docs/ is a copy
# of lines of this file, and tests/docs.rs runs it against the real binaries (it needs curl,
# jq and sqlite3). Run it yourself from the repository root: bash docs/walkthrough.sh
set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null; wait; [ -z "${WORK:-}" ] || rm -rf "$WORK"' EXIT
expect() { # expect WHAT ACTUAL WANTED
  if [ "$2" != "$3" ]; then echo "walkthrough: $1 is '$2', expected '$3'" >&2; exit 1; fi
}

# --- start: the fake provider and control browser, then the router ---
cargo build --workspace
cargo run -q -- --version >/dev/null  # the README's `cargo run` picks the router's binary
export PATH="$PWD/target/debug:$PATH"
WORK=$(mktemp -d) && cp config.toml "$WORK" && cd "$WORK"
fake-upstream &
export AUTH_ROUTER_ADMIN__TOKEN=walkthrough-admin-token-0123456789abcdef
claude-auth-router serve &
until curl -sf http://127.0.0.1:7777/readyz >/dev/null; do sleep 0.2; done

# --- the API by hand: the employee asks, the operator approves, the employee polls ---
R=http://127.0.0.1:7777
ADMIN="authorization: Bearer $AUTH_ROUTER_ADMIN__TOKEN"
CREATED=$(curl -s -X POST $R/v1/token-requests -H 'content-type: application/json' \
  -d '{"client_name": "alice", "hostname": "alice-laptop", "scopes": ["user:inference"]}')
echo "$CREATED"
ID=$(echo "$CREATED" | jq -r .request_id)
POLL=$(echo "$CREATED" | jq -r .poll_token)
curl -s $R/v1/token-requests/$ID/status -H "authorization: Bearer $POLL"
curl -s $R/v1/token-requests/$ID/status -H "authorization: Bearer $POLL"
curl -s "$R/v1/token-requests?status=pending" -H "$ADMIN" | jq '.requests[] | {request_id, client_name, hostname}'
curl -s -X POST $R/v1/token-requests/$ID/select-account -H "$ADMIN" \
  -H 'content-type: application/json' -d '{"account_id": 1}'
sleep 5
STATUS=$(curl -s $R/v1/token-requests/$ID/status -H "authorization: Bearer $POLL")
echo "$STATUS" | jq '{status, account_id, token}'
expect "alice's status" "$(echo "$STATUS" | jq -r .status)" approved
expect "alice's account" "$(echo "$STATUS" | jq -r .account_id)" 1

# --- the same with the command-line tools ---
export AUTH_ROUTER_URL=$R
export AUTH_ROUTER_ADMIN_TOKEN=$AUTH_ROUTER_ADMIN__TOKEN
export XDG_CACHE_HOME=$WORK/cache
claude-auth-router token --client-name bob --timeout 60 > token.txt &
until BOB=$(claude-auth-router admin list --status pending --json | jq -re '.requests[0].request_id'); do sleep 0.2; done
claude-auth-router admin list --status pending
claude-auth-router admin approve "$BOB" --account 2
wait $!
cut -c1-12 token.txt
claude-auth-router token --client-name bob | cut -c1-12
expect "the cached token" "$(claude-auth-router token --client-name bob)" "$(cat token.txt)"
case "$(cat token.txt)" in fake-at-2-*) ;; *) echo "walkthrough: not account 2's token" >&2; exit 1 ;; esac

# --- revoke, and what the database says ---
claude-auth-router admin revoke "$BOB"
claude-auth-router admin audit "$BOB"
sqlite3 -readonly auth-router.db \
  "SELECT client_name, status, account_id FROM auth_requests ORDER BY created_at;"
expect "bob's request" "$(sqlite3 -readonly auth-router.db "SELECT status FROM auth_requests WHERE id = '$BOB';")" revoked
expect "alice's request" "$(sqlite3 -readonly auth-router.db "SELECT status FROM auth_requests WHERE id = '$ID';")" approved
echo "walkthrough: ok"

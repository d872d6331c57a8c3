#!/usr/bin/env bash
# The API suite again, on PostgreSQL (TEST_STORE=postgres: every test app gets a fresh
# database on the throwaway cluster, TEST_POSTGRES_URL). The same assertions as the SQLite
# run, except the tests below, which read SQLite's own files, pragmas, query plans or SQL
# dialect (they run in the SQLite pass). Each is listed with what it reads.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TEST_POSTGRES_URL:?source .ci/postgres.sh first}"

sqlite_only=(
  # the database files' bytes (tokens at rest, scrubbed after revoke)
  encryption::
  revoke::a_revoked_token_is_in_none_of_the_database_files_once_revoke_answers
  # SQLite's write lock held by an admin's shell, and the busy answers it causes
  busy::
  limits::a_request_slower_than_the_server_timeout_answers_503_and_the_service_carries_on
  operations::readyz_needs_a_writable_database_while_healthz_only_needs_an_answer
  # SQLite's query plans
  limits::the_create_limit_count_reads_open_rows_through_their_index
  reaper::every_retention_delete_finds_its_rows_through_an_index_without_a_scan_or_a_sort
  reaper::the_reapers_statements_read_only_open_rows_through_an_index
  # copy-db starts from a SQLite router and copies to PostgreSQL and back itself
  copy_db::
  # `backup` (VACUUM INTO; PostgreSQL is backed up with pg_dump)
  operations::a_backup_taken_under_load_opens_and_holds_every_acknowledged_row
  # rows read with SQLite's SQL (text ids, ? parameters, quote()/group_concat())
  clients::wrong_rotated_and_disabled_keys_are_refused_and_never_taken_as_unverified
  console::signing_in_sets_a_strict_http_only_session_cookie_and_stores_only_its_hash
  console::the_stored_session_binding_is_no_plain_hash_of_the_admin_token
  create::create_returns_201_and_stores_only_a_hash_of_the_poll_token
  flow::the_full_flow_hands_the_providers_token_to_the_polling_client
  operations::a_request_deleted_by_retention_is_not_served_from_the_cache
  operations::readyz_answers_503_when_the_reaper_has_not_completed_a_pass_in_three_intervals
  operations::retention_keeps_an_approved_request_whose_tokens_were_refreshed_recently
  reaper::a_backlog_larger_than_one_transaction_is_expired_in_full_with_one_audit_row_each
  reaper::reap_once_expires_only_open_requests_past_their_deadline
  select_account::a_control_browser_timeout_answers_502_and_restores_the_previous_login
  select_account::a_failing_control_browser_answers_502_and_leaves_the_request_as_it_was
  webhooks::a_410_gives_up_at_once_and_the_next_event_still_goes
  webhooks::every_change_writes_its_audit_and_outbox_rows_wakes_waiters_and_refreshes_the_cache
)
skips=()
for test in "${sqlite_only[@]}"; do skips+=(--skip "$test"); done
TEST_STORE=postgres cargo test --test api -- "${skips[@]}"

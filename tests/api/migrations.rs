//! Upgrading a database made by an older version keeps every request and token.

use std::borrow::Cow;

use claude_auth_router::db::Db;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

#[tokio::test]
async fn upgrading_from_the_first_schema_keeps_every_request_and_token() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let options: SqliteConnectOptions = url
        .parse::<SqliteConnectOptions>()
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let mut conn = options.connect().await.unwrap();
    let mut old = sqlx::migrate!("./migrations/sqlite");
    old.migrations = Cow::Owned(old.migrations[..2].to_vec());
    old.run(&mut conn).await.unwrap();
    for (id, status) in [
        ("11111111-1111-4111-8111-111111111111", "approved"),
        ("22222222-2222-4222-8222-222222222222", "pending"),
    ] {
        sqlx::query(
            "INSERT INTO auth_requests (id, client_name, hostname, scopes, status, created_at, updated_at, expires_at, poll_token_hash)
             VALUES (?, 'c', 'h', 's', ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:10:00.000Z', X'00')",
        )
        .bind(id)
        .bind(status)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO token_bundles (request_id, access_token, refresh_token, token_type, scope, obtained_at, generation)
         VALUES ('11111111-1111-4111-8111-111111111111', 'at-kept', 'rt-kept', 'bearer', 's', '2026-01-01T00:01:00.000Z', 3)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let db = Db::connect(&url).await.expect("the upgrade applies");
    db.close().await;

    let mut conn = options.connect().await.unwrap();
    let bundle: (String, String, i64) =
        sqlx::query_as("SELECT access_token, refresh_token, generation FROM token_bundles")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(bundle, ("at-kept".into(), "rt-kept".into(), 3));
    let requests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_requests")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(requests, 2);
    sqlx::query("UPDATE auth_requests SET status = 'revoked' WHERE status = 'approved'")
        .execute(&mut conn)
        .await
        .expect("the new status is allowed");
    let orphan = sqlx::query(
        "INSERT INTO token_bundles (request_id, access_token, token_type, scope, obtained_at)
         VALUES ('33333333-3333-4333-8333-333333333333', 'x', 'bearer', 's', 'now')",
    )
    .execute(&mut conn)
    .await;
    assert!(
        orphan.is_err(),
        "the foreign key still holds after the rebuild"
    );
    let indexes: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'auth_requests' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        indexes,
        [
            "auth_requests_by_created",
            "auth_requests_by_state",
            "auth_requests_by_status_created",
            "auth_requests_finished_by_updated",
            "auth_requests_open_by_client",
            "auth_requests_open_by_expiry",
            "auth_requests_open_by_hostname",
        ]
    );
}

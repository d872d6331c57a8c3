//! PostgreSQL, the second store: its schema tree migrates on a
//! real server and keeps every table and column of the SQLite tree. The server is
//! `TEST_POSTGRES_URL`, or a throwaway cluster started from the installed PostgreSQL; without
//! PostgreSQL these tests fail, never skip.

use std::collections::BTreeSet;

use claude_auth_router_postgres::testing::scratch_database;
use sqlx::{PgPool, Row};

/// (table or view, column) of every user table and view.
async fn postgres_columns(pool: &PgPool) -> BTreeSet<(String, String)> {
    sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name != '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

async fn sqlite_columns() -> BTreeSet<(String, String)> {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("schema.db").display());
    let db = claude_auth_router::db::Db::connect(&url).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')
         AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut columns = BTreeSet::new();
    for table in tables {
        let names: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&pool)
                .await
                .unwrap();
        columns.extend(names.into_iter().map(|c| (table.clone(), c)));
    }
    pool.close().await;
    db.close().await;
    columns
}

#[tokio::test]
async fn the_postgres_schema_migrates_and_has_every_table_and_column_of_the_sqlite_one() {
    let pool = scratch_database().await;

    claude_auth_router_postgres::MIGRATOR
        .run(&pool)
        .await
        .expect("the PostgreSQL tree migrates an empty database");
    claude_auth_router_postgres::MIGRATOR
        .run(&pool)
        .await
        .expect("and a second run is a no-op");

    let postgres = postgres_columns(&pool).await;
    let sqlite = sqlite_columns().await;
    let missing: Vec<_> = sqlite.difference(&postgres).collect();
    let extra: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the trees differ: missing in PostgreSQL {missing:?}, only in PostgreSQL {extra:?}"
    );
    let native: Vec<(String, String)> = sqlx::query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_name = 'auth_requests' AND column_name IN ('id', 'created_at', 'poll_token_hash')
         ORDER BY column_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(
        native,
        [
            (
                "created_at".to_owned(),
                "timestamp with time zone".to_owned()
            ),
            ("id".to_owned(), "uuid".to_owned()),
            ("poll_token_hash".to_owned(), "bytea".to_owned()),
        ]
    );
    let body: String = sqlx::query_scalar(
        "SELECT data_type::text FROM information_schema.columns
         WHERE table_name = 'webhook_deliveries' AND column_name = 'body'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(body, "jsonb");
}

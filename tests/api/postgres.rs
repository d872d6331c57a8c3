//! PostgreSQL, the second store (issue 24), as far as it goes: its schema tree migrates on a
//! real server and keeps every table and column of the SQLite tree. The server is
//! `TEST_POSTGRES_URL`, or a throwaway cluster started from the installed PostgreSQL; without
//! PostgreSQL these tests fail, never skip.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

/// The test server: `TEST_POSTGRES_URL` when set (`.ci/run` starts one with
/// `.ci/postgres.sh`), else a throwaway cluster this test process starts once from the
/// installed PostgreSQL, which stops when the process ends. No PostgreSQL: the test fails.
fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) => start_cluster(),
    })
    .clone()
}

/// initdb in a temporary directory and a server on a free loopback port, as the `postgres`
/// user when the tests run as root (the server refuses root). A watchdog beside the server
/// stops it, and removes its directory, once this process is gone: a test run leaves nothing
/// behind.
fn start_cluster() -> String {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .max()
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed: install Debian's postgresql package (.ci/run does), \
                 or set TEST_POSTGRES_URL to a server"
            )
        });
    let dir = tempfile::Builder::new()
        .prefix("router-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = rustix::process::geteuid().is_root();
    let run = |script: String| {
        if root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", &script]);
            c
        } else {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", &script]);
            c
        }
    };
    if root {
        let owned = std::process::Command::new("chown")
            .arg("postgres")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(owned.success(), "chown postgres {}", dir.display());
    }
    let (bin, data) = (bin.display(), dir.join("data"));
    let data = data.display();
    let initdb = run(format!(
        "{bin}/initdb -D {data} -U postgres --auth=trust -E UTF8 >{dir}/initdb.log 2>&1",
        dir = dir.display()
    ))
    .status()
    .unwrap();
    assert!(
        initdb.success(),
        "initdb failed: see {}/initdb.log",
        dir.display()
    );
    let watchdog = format!(
        "{bin}/postgres -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c max_connections=300 >{dir}/server.log 2>&1 & server=$!; \
         while [ -d /proc/{parent} ]; do sleep 1; done; kill -INT $server; wait $server; rm -rf {dir}",
        dir = dir.display(),
        parent = std::process::id(),
    );
    // Never waited on by design: it outlives every test, and when this process ends it is
    // reparented to init, which reaps it.
    #[allow(clippy::zombie_processes)]
    run(watchdog)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the PostgreSQL server starts");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return format!("postgres://postgres@127.0.0.1:{port}/postgres");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("PostgreSQL did not start: see {}/server.log", dir.display());
}

/// A new, empty database on the test cluster, for one test.
pub async fn scratch_database() -> PgPool {
    let server = server_url();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&server)
        .await
        .expect("the test PostgreSQL answers");
    let name = format!("router_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => unreachable!("a database URL names its database"),
    };
    PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap()
}

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

    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .expect("the PostgreSQL tree migrates an empty database");
    sqlx::migrate!("./migrations/postgres")
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

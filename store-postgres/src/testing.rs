//! A PostgreSQL for tests: `TEST_POSTGRES_URL` when set (`.ci/run` starts one with
//! `.ci/postgres.sh`), else a throwaway cluster started once per test process from the
//! installed PostgreSQL. Without PostgreSQL the tests that need it fail, never skip.

use std::sync::OnceLock;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The test server: `TEST_POSTGRES_URL` when set (`.ci/run` starts one with
/// `.ci/postgres.sh`), else a throwaway cluster this test process starts once from the
/// installed PostgreSQL, which stops when the process ends. No PostgreSQL: the test fails.
pub fn server_url() -> String {
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
    let url = scratch_database_url().await;
    PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap()
}

/// The URL of a new, empty database on the test cluster, for a test that connects itself
/// (a router's store, or a router process).
pub async fn scratch_database_url() -> String {
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
    match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => unreachable!("a database URL names its database"),
    }
}

/// Polls `attempt` until it gives `Some`, for up to 5 s: the server releases a closed
/// connection's locks a moment after the client hangs up, as it would for a router that died.
pub async fn eventually<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..250 {
        if let Some(value) = attempt().await {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("still nothing after 5 s");
}

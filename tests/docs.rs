//! The docs' code blocks are tested, so the README and `docs/` cannot drift from the code.
//!
//! Every fenced block in `README.md` and `docs/*.md` has an info string that says how:
//! - `sh`: its lines (blank lines and comments aside) appear, in order, in
//!   `docs/walkthrough.sh`, which [`the_walkthrough_runs_against_the_real_binaries`] runs;
//! - `sql`: every statement runs against a migrated SQLite database with rows in it;
//! - `postgresql`: likewise, against a migrated PostgreSQL database (the throwaway cluster);
//! - `toml`: it loads as a valid router configuration;
//! - `python`: a webhook receiver's `verify`, run by python3 against a signature the router
//!   really makes;
//! - `text`, `json`: output, synopses and payloads, shown and not run.
//!
//! Anything else, or no info string, fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use claude_auth_router::Config;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file in docs/.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

/// A fenced block: its document, first line number, info string and text.
struct Block {
    place: String,
    info: String,
    text: String,
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(root()).unwrap().display().to_string();
        let mut open: Option<(usize, String, Vec<&str>)> = None;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            match (&mut open, trimmed.strip_prefix("```")) {
                (None, Some(info)) => open = Some((n + 1, info.trim().to_owned(), Vec::new())),
                (Some(_), Some(_)) => {
                    let (start, info, lines) = open.take().unwrap();
                    out.push(Block {
                        place: format!("{name}:{start}"),
                        info,
                        text: lines.join("\n"),
                    });
                }
                (Some((_, _, lines)), None) => lines.push(line),
                (None, None) => {}
            }
        }
        assert!(open.is_none(), "{name}: a code block is never closed");
    }
    out
}

fn of_kind(info: &str) -> Vec<Block> {
    blocks().into_iter().filter(|b| b.info == info).collect()
}

/// The lines that carry commands: trimmed, without blank lines and comments.
fn command_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_code_block_in_the_docs_says_how_it_is_tested() {
    let blocks = blocks();
    assert!(blocks.len() > 20, "the docs were read: {}", blocks.len());
    for block in &blocks {
        assert!(
            ["sh", "sql", "postgresql", "toml", "python", "text", "json"]
                .contains(&block.info.as_str()),
            "{}: info string {:?}; use sh, sql, postgresql, toml, python, text or json (see docs/development.md)",
            block.place,
            block.info
        );
    }
}

#[test]
fn every_sh_block_is_a_copy_of_lines_of_the_walkthrough() {
    let script = std::fs::read_to_string(root().join("docs/walkthrough.sh")).unwrap();
    let script = command_lines(&script);
    let blocks = of_kind("sh");
    assert!(blocks.len() >= 5, "{}", blocks.len());
    for block in blocks {
        let mut rest = script.iter();
        for line in command_lines(&block.text) {
            assert!(
                rest.any(|l| *l == line),
                "{}: `{line}` is not in docs/walkthrough.sh (in this order), so no test runs it",
                block.place
            );
        }
    }
}

#[test]
fn every_toml_block_is_a_valid_configuration() {
    let mut base = Config::default();
    base.oauth.client_id = "docs".into();
    base.oauth.auth_url = "https://provider.example/authorize".into();
    base.oauth.token_url = "https://provider.example/token".into();
    let blocks = of_kind("toml");
    assert!(!blocks.is_empty());
    for block in blocks {
        let figment = Figment::from(Serialized::defaults(&base)).merge(Toml::string(&block.text));
        if let Err(e) = Config::from_figment(figment) {
            panic!("{}: not a valid configuration: {e}", block.place);
        }
    }
}

#[tokio::test]
async fn every_sql_block_runs_against_the_schema_with_rows_in_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("docs.db").display());
    claude_auth_router::db::Db::connect(&url)
        .await
        .unwrap()
        .close()
        .await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO auth_requests (id, client_name, hostname, scopes, status, account_id,
             created_at, updated_at, expires_at, poll_token_hash)
         VALUES ('3f0c5c2e-8a7e-4b8e-9a53-2f2d3c4b5a69', 'alice', 'alice-laptop', 'user:inference',
             'approved', 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
             strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), X'00');
         INSERT INTO token_bundles (request_id, access_token, token_type, scope, obtained_at)
         VALUES ('3f0c5c2e-8a7e-4b8e-9a53-2f2d3c4b5a69', 'x', 'bearer', 'user:inference',
             strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
         INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
         VALUES ('3f0c5c2e-8a7e-4b8e-9a53-2f2d3c4b5a69', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
             'admin', 'approve', 'in_progress', 'approved', 'account 1');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let blocks = of_kind("sql");
    assert!(!blocks.is_empty());
    let mut statements = 0;
    for block in blocks {
        let sql: String = block
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let rows = sqlx::query(statement).fetch_all(&pool).await;
            if let Err(e) = rows {
                panic!("{}: `{statement}` fails: {e}", block.place);
            }
            statements += 1;
        }
    }
    assert!(statements >= 5, "{statements}");
}

#[tokio::test]
async fn every_postgresql_block_runs_against_the_postgres_schema_with_rows_in_it() {
    let url = claude_auth_router_postgres::testing::scratch_database_url().await;
    claude_auth_router::db::Db::connect(&url)
        .await
        .unwrap()
        .close()
        .await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO auth_requests (id, client_name, hostname, scopes, status, account_id,
             created_at, updated_at, expires_at, poll_token_hash)
         VALUES ('3f0c5c2e-8a7e-4b8e-9a53-2f2d3c4b5a69', 'alice', 'alice-laptop', 'user:inference',
             'approved', 1, now(), now(), now(), '\\x00');
         INSERT INTO token_bundles (request_id, access_token, token_type, scope, obtained_at,
             refresh_expires_at)
         VALUES ('3f0c5c2e-8a7e-4b8e-9a53-2f2d3c4b5a69', 'x', 'bearer', 'user:inference', now(),
             now() + interval '1 day');
         INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
         VALUES ('3f0c5c2e-8a7e-4b8e-9a53-2f2d3c4b5a69', now(), 'admin', 'approve',
             'in_progress', 'approved', 'account 1');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let blocks = of_kind("postgresql");
    assert!(!blocks.is_empty());
    let mut statements = 0;
    for block in blocks {
        for statement in block
            .text
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if let Err(e) = sqlx::query(statement).fetch_all(&pool).await {
                panic!("{}: `{statement}` fails: {e}", block.place);
            }
            statements += 1;
        }
    }
    assert!(statements >= 5, "{statements}");
}

/// The README's walkthrough, run as a script against the real binaries: it builds them,
/// starts the fake and the router on the committed configuration's ports, and checks every
/// answer it relies on.
#[test]
fn the_walkthrough_runs_against_the_real_binaries() {
    for tool in ["curl", "jq", "sqlite3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success();
        assert!(
            found,
            "the walkthrough needs {tool}: install it (.ci/run does)"
        );
    }
    let cargo_dir = Path::new(env!("CARGO")).parent().unwrap().to_owned();
    let path = std::env::join_paths(std::iter::once(cargo_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();

    let output = Command::new("bash")
        .arg("docs/walkthrough.sh")
        .current_dir(root())
        .env("PATH", path)
        .env_remove("AUTH_ROUTER_URL")
        .env_remove("AUTH_ROUTER_ADMIN_TOKEN")
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("walkthrough: ok"),
        "the walkthrough failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

#[test]
fn every_relative_link_in_the_docs_points_at_a_file() {
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        let targets = text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
            .chain(
                text.split("src=\"")
                    .skip(1)
                    .filter_map(|r| r.split('"').next()),
            );
        for target in targets {
            let path = target.split('#').next().unwrap();
            if path.is_empty() || path.contains("://") {
                continue;
            }
            assert!(
                dir.join(path).exists(),
                "{}: the link {target} points at nothing",
                doc.display()
            );
        }
    }
}

#[test]
fn every_python_block_verifies_a_signature_the_router_makes_and_refuses_a_forged_one() {
    let blocks = of_kind("python");
    assert!(!blocks.is_empty());
    let body = r#"{"id":"6f1c","type":"test","request":null}"#;
    let now = chrono::Utc::now().timestamp();
    let header = claude_auth_router::notify::sign::signature(b"s3cret", now, body.as_bytes());
    let stale = claude_auth_router::notify::sign::signature(b"s3cret", now - 3600, body.as_bytes());
    for block in blocks {
        assert!(
            block.text.contains("def verify("),
            "{}: defines verify",
            block.place
        );
        let script = format!(
            "{}\n\nassert verify(b's3cret', {header:?}, {body:?}.encode())\n\
             assert not verify(b's3cret', {header:?}, b'{{}}')\n\
             assert not verify(b'other', {header:?}, {body:?}.encode())\n\
             assert not verify(b's3cret', {stale:?}, {body:?}.encode())\n\
             print('verified')\n",
            block.text
        );
        let output = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3 runs the receiver's snippet (.ci/run's machine has it)");
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).contains("verified"),
            "{}: {}",
            block.place,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

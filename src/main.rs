//! The `claude-auth-router` command: parse the command line, load the configuration, set up
//! logging and hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use claude_auth_router::client::admin::{self, AdminArgs};
use claude_auth_router::client::command::{self, ExecArgs, PrintArgs};
use claude_auth_router::{ops, telemetry, Application, Config};

#[derive(Parser)]
#[command(name = "claude-auth-router", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Configuration file (default: ./config.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a usable access token on stdout, asking the router for one when needed.
    ///
    /// Exit codes: 0 token printed, 1 network or unexpected error, 2 usage error, 3 denied,
    /// 4 expired, 5 cancelled or error on the router, 130 interrupted.
    Token(PrintArgs),
    /// Get a token as `token` does, then run COMMAND with it in the environment.
    ///
    /// Example: claude-auth-router exec -- claude. The command replaces this process, so its
    /// exit code is the command's; before it runs, the exit codes are those of `token`, and
    /// 127 (not found) or 126 (cannot run) when the command cannot start.
    Exec(ExecArgs),
    /// Operator actions from a terminal: list, approve, deny, revoke, audit.
    ///
    /// Needs AUTH_ROUTER_ADMIN_TOKEN. Exit codes: 0 done, 1 error, 2 usage error.
    Admin(AdminArgs),
    /// Validate the configuration and print it as the service would use it, secrets redacted.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write a consistent copy of the database to OUT while the service runs (VACUUM INTO).
    Backup {
        /// The new backup file; it must not exist yet.
        out: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Re-seal every stored token and verifier with the current storage.encryption_key.
    ///
    /// Safe while the service runs. Run it after setting a first key or rotating keys; then
    /// the old key can leave storage.previous_keys.
    Rekey {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Copy everything from one database into another, empty one: SQLite to PostgreSQL, or
    /// back. Stop the routers on a SQLite source first. Prints each table's rows on both
    /// sides; exits non-zero if any differ.
    CopyDb {
        /// The database to copy, e.g. sqlite://auth-router.db (read, never written).
        #[arg(long)]
        from: String,
        /// The empty database to copy into, e.g. postgres://router:PASSWORD@db:5432/auth.
        #[arg(long)]
        to: String,
    },
    /// Print the OpenAPI document of the HTTP API (what GET /v1/openapi.json serves).
    ///
    /// Regenerate the committed copy with: claude-auth-router openapi > docs/openapi.json
    Openapi,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => report(serve(config)),
        Command::Token(args) => ExitCode::from(token(args)),
        Command::Exec(args) => ExitCode::from(exec(args)),
        Command::Admin(args) => ExitCode::from(admin_command(args)),
        Command::CheckConfig { config } => report(load(config).and_then(|c| ops::check_config(&c))),
        Command::Backup { out, config } => report(load(config).and_then(|c| backup(c, out))),
        Command::Rekey { config } => report(load(config).and_then(rekey)),
        Command::CopyDb { from, to } => report(copy_db(from, to)),
        Command::Openapi => {
            let document = claude_auth_router::routes::openapi::document();
            println!(
                "{}",
                serde_json::to_string_pretty(document).expect("the document serializes")
            );
            ExitCode::SUCCESS
        }
    }
}

/// The configuration, with logging set up as it says.
fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let config = Config::load(path.as_deref())?;
    telemetry::init(config.log.format);
    Ok(config)
}

#[tokio::main]
async fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path)?;
    Application::build(config).await?.run_until_stopped().await
}

#[tokio::main]
async fn token(args: PrintArgs) -> u8 {
    command::run(args).await
}

#[tokio::main]
async fn exec(args: ExecArgs) -> u8 {
    command::exec(args).await
}

#[tokio::main]
async fn admin_command(args: AdminArgs) -> u8 {
    admin::run(args, std::env::var("AUTH_ROUTER_ADMIN_TOKEN").ok()).await
}

#[tokio::main]
async fn backup(config: Config, out: PathBuf) -> anyhow::Result<()> {
    ops::backup(&config, &out).await
}

#[tokio::main]
async fn rekey(config: Config) -> anyhow::Result<()> {
    ops::rekey(&config).await
}

#[tokio::main]
async fn copy_db(from: String, to: String) -> anyhow::Result<()> {
    ops::copy_db(&from.into(), &to.into()).await
}

/// One clear line on stderr and a non-zero exit, never a backtrace.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

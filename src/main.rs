//! The `claude-auth-router` command: parse the command line, set up logging, load the
//! configuration and hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use claude_auth_router::client::admin::{self, AdminArgs};
use claude_auth_router::client::command::{self, TokenArgs};
use claude_auth_router::{telemetry, Application, Config};

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
    Token(TokenArgs),
    /// Re-seal every stored token and verifier with the current storage.encryption_key.
    ///
    /// Safe while the service runs. Run it after setting a first key or rotating keys; then
    /// the old key can leave storage.previous_keys.
    Rekey {
        /// Configuration file (default: ./config.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Operator actions from a terminal: list, approve, deny, revoke, audit.
    ///
    /// Needs AUTH_ROUTER_ADMIN_TOKEN. Exit codes: 0 done, 1 error, 2 usage error.
    Admin(AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            telemetry::init();
            report(serve(config))
        }
        Command::Rekey { config } => {
            telemetry::init();
            report(rekey(config))
        }
        Command::Token(args) => ExitCode::from(token(args)),
        Command::Admin(args) => ExitCode::from(admin_command(args)),
    }
}

#[tokio::main]
async fn admin_command(args: AdminArgs) -> u8 {
    admin::run(args, std::env::var("AUTH_ROUTER_ADMIN_TOKEN").ok()).await
}

#[tokio::main]
async fn token(args: TokenArgs) -> u8 {
    command::run(args).await
}

#[tokio::main]
async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref())?;
    Application::build(config).await?.run_until_stopped().await
}

#[tokio::main]
async fn rekey(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref())?;
    claude_auth_router::startup::rekey(&config).await
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

//! `claude-auth-router token`: prints a usable access token on stdout and nothing else, so
//! that `TOKEN=$(claude-auth-router token)` works. Everything for people goes to stderr.
//!
//! `claude-auth-router exec -- COMMAND`: gets the token the same way, then becomes COMMAND
//! with the token in its environment (`CLAUDE_CODE_OAUTH_TOKEN`, which Claude Code reads).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use super::{default_cache_dir, ClientError, Event, Progress, RouterClient, TokenOptions};
use crate::domain::Status;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The router's URL.
    #[arg(long, env = "AUTH_ROUTER_URL", default_value = "http://127.0.0.1:7777")]
    pub router: String,
    /// Who is asking, as the operator will see it [default: your user name].
    #[arg(long)]
    pub client_name: Option<String>,
    /// From which machine [default: this machine's host name].
    #[arg(long)]
    pub hostname: Option<String>,
    /// A scope to ask for; repeat for several [default: the router's default scopes].
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// Where tokens are cached [default: $XDG_CACHE_HOME/claude-auth-router or ~/.cache/claude-auth-router].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Refresh a cached token that has fewer seconds left than this.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub min_validity: u64,
    /// Give up waiting for approval after this many seconds (and cancel the request).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// A file holding this machine's enrolled client key (else AUTH_ROUTER_CLIENT_KEY).
    #[arg(long, value_name = "PATH")]
    pub client_key_file: Option<PathBuf>,
    /// Ask for a long-lived, inference-only token that lives this long (365d, 12h, 90m,
    /// 3600s): nothing to refresh, cached until it expires. The router must allow it for
    /// this client.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lifetime: Option<u64>,
}

/// A duration with a unit, `s`, `m`, `h` or `d` (`365d`), as seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let usage = || {
        format!("{text:?} is not a duration: write a number and a unit (s, m, h or d), as in 365d")
    };
    let split = text.len().checked_sub(1).ok_or_else(usage)?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(usage()),
    };
    let n: u64 = number.parse().map_err(|_| usage())?;
    match n.checked_mul(scale) {
        Some(0) | None => Err(usage()),
        Some(secs) => Ok(secs),
    }
}

/// The client key from `--client-key-file`, else `AUTH_ROUTER_CLIENT_KEY`, if any.
fn client_key(
    file: Option<&std::path::Path>,
) -> Result<Option<secrecy::SecretString>, ClientError> {
    let key = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            ClientError::Usage(format!(
                "cannot read --client-key-file {}: {e}",
                path.display()
            ))
        })?,
        None => std::env::var("AUTH_ROUTER_CLIENT_KEY").unwrap_or_default(),
    };
    let key = key.trim();
    Ok((!key.is_empty()).then(|| secrecy::SecretString::from(key.to_owned())))
}

/// The variable Claude Code reads its OAuth token from.
pub const CLAUDE_CODE_TOKEN_VAR: &str = "CLAUDE_CODE_OAUTH_TOKEN";

/// `token` with how to print what it got.
#[derive(Debug, Args)]
pub struct PrintArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// plain: the access token alone; json: {"access_token", "expires_at", "account_id"};
    /// env: CLAUDE_CODE_OAUTH_TOKEN=…, for eval or a .env file.
    #[arg(long, value_enum, default_value_t = Format::Plain)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Plain,
    Json,
    Env,
}

/// `exec`: the token options, the variable to set, and the command to become.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// The environment variable that carries the access token.
    #[arg(long = "env", value_name = "NAME", default_value = CLAUDE_CODE_TOKEN_VAR)]
    pub env: String,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs `token`; returns the process exit code.
pub async fn run(args: PrintArgs) -> u8 {
    let token = match fetch(args.token).await {
        Ok(token) => token,
        Err(code) => return code,
    };
    let text = match args.format {
        Format::Plain => token.access_token.clone(),
        Format::Json => serde_json::json!({
            "access_token": token.access_token,
            "expires_at": token.expires_at,
            "account_id": token.account_id,
        })
        .to_string(),
        Format::Env => format!(
            "{CLAUDE_CODE_TOKEN_VAR}={}",
            shell_word(&token.access_token)
        ),
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("claude-auth-router: cannot write the token to stdout: {e}");
            1
        }
    }
}

/// Runs `exec`: gets the token, then replaces this process with the command (on Unix), so
/// its signals and its exit code are the command's own. Returns only on failure.
pub async fn exec(args: ExecArgs) -> u8 {
    if args.env.is_empty() || args.env.contains(['=', '\0']) {
        eprintln!("claude-auth-router: --env needs a variable name");
        return 2;
    }
    let token = match fetch(args.token).await {
        Ok(token) => token,
        Err(code) => return code,
    };
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = std::process::Command::new(program);
    command.args(rest).env(&args.env, &token.access_token);
    become_command(command, program)
}

#[cfg(unix)]
fn become_command(mut command: std::process::Command, program: &str) -> u8 {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls signal(2), which is async-signal-safe. Rust ignores
    // SIGPIPE in its own programs, and an ignored signal stays ignored across exec: the
    // command must get the default, as it would from a shell.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
    let error = command.exec();
    eprintln!("claude-auth-router: cannot run {program}: {error}");
    if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

#[cfg(not(unix))]
fn become_command(mut command: std::process::Command, program: &str) -> u8 {
    match command.status() {
        Ok(status) => status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
        Err(error) => {
            eprintln!("claude-auth-router: cannot run {program}: {error}");
            127
        }
    }
}

/// The token as `token` gets it, or the exit code after saying on stderr what went wrong.
async fn fetch(args: TokenArgs) -> Result<super::Token, u8> {
    let progress = StderrProgress::new(std::io::stderr().is_terminal());
    let result = async {
        let client = RouterClient::new(&args.router)?;
        let options = options(args)?;
        client.get_token(&options, &progress, interrupted()).await
    }
    .await;
    progress.finish();
    result.map_err(|e| {
        eprintln!("claude-auth-router: {e}");
        e.exit_code()
    })
}

/// `value` as one shell word: as it is when it holds only characters no shell or `.env`
/// reader treats specially, single-quoted otherwise.
fn shell_word(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.~+/=:@%".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

fn options(args: TokenArgs) -> Result<TokenOptions, ClientError> {
    let cache_dir = match (args.no_cache, args.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir),
        (false, None) => Some(default_cache_dir().ok_or_else(|| {
            ClientError::Usage(
                "no cache directory: HOME is not set. Pass --cache-dir DIR or --no-cache".into(),
            )
        })?),
    };
    let client_key = client_key(args.client_key_file.as_deref())?;
    Ok(TokenOptions {
        client_key,
        client_name: args.client_name.unwrap_or_else(user_name),
        hostname: args.hostname.unwrap_or_else(host_name),
        scopes: args.scopes,
        cache_dir,
        min_validity: Duration::from_secs(args.min_validity),
        timeout: args.timeout.map(Duration::from_secs),
        lifetime_secs: args.lifetime,
    })
}

fn user_name() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

fn host_name() -> String {
    #[cfg(unix)]
    {
        let uname = rustix::system::uname();
        if let Ok(name) = uname.nodename().to_str() {
            if !name.is_empty() {
                return name.to_owned();
            }
        }
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn interrupted() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Progress on stderr: a spinner with the elapsed time on a terminal, plain lines otherwise.
struct StderrProgress {
    tty: bool,
    spinner: Arc<Mutex<Spinner>>,
}

struct Spinner {
    active: bool,
    started: Instant,
    message: String,
}

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

impl StderrProgress {
    fn new(tty: bool) -> Self {
        let spinner = Spinner {
            active: false,
            started: Instant::now(),
            message: String::new(),
        };
        Self {
            tty,
            spinner: Arc::new(Mutex::new(spinner)),
        }
    }

    fn spinner(&self) -> std::sync::MutexGuard<'_, Spinner> {
        self.spinner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prints a line for people, above the spinner when there is one.
    fn line(&self, text: &str) {
        let clear = if self.tty { "\r\x1b[2K" } else { "" };
        eprintln!("{clear}claude-auth-router: {text}");
    }

    fn start_spinner(&self, message: String) {
        {
            let mut s = self.spinner();
            s.active = true;
            s.started = Instant::now();
            s.message = message;
        }
        let spinner = self.spinner.clone();
        tokio::spawn(async move {
            for frame in FRAMES.iter().cycle() {
                tokio::time::sleep(Duration::from_millis(120)).await;
                let s = spinner.lock().unwrap_or_else(|e| e.into_inner());
                if !s.active {
                    break;
                }
                let elapsed = s.started.elapsed().as_secs();
                eprint!(
                    "\r\x1b[2K{frame} {} ({}m{:02}s)",
                    s.message,
                    elapsed / 60,
                    elapsed % 60
                );
            }
        });
    }

    fn finish(&self) {
        let mut s = self.spinner();
        if s.active {
            s.active = false;
            eprint!("\r\x1b[2K");
        }
    }
}

impl Progress for StderrProgress {
    fn event(&self, event: &Event) {
        match event {
            Event::Created {
                request_id,
                expires_at,
            } => {
                let until = expires_at.format("%H:%M:%S UTC");
                self.line(&format!("requested a token (request {request_id}); an operator must approve it by {until}"));
                if self.tty {
                    self.start_spinner("waiting for approval".into());
                } else {
                    self.line("waiting for approval");
                }
            }
            Event::Waiting {
                status: Status::InProgress,
                account_id,
            } => {
                let message = match account_id {
                    Some(a) => format!("account {a} chosen; waiting for the login to finish"),
                    None => "waiting for the login to finish".into(),
                };
                let mut s = self.spinner();
                if s.message != message {
                    if !self.tty {
                        drop(s);
                        self.line(&message);
                        return;
                    }
                    s.message = message;
                }
            }
            Event::Waiting { .. } => {}
            Event::Retrying { reason, retry_in } => {
                self.line(&format!("{reason}; retrying in {}s", retry_in.as_secs()));
            }
            Event::SlowDown { interval } => {
                self.line(&format!(
                    "the router asked to poll less often; now every {}s",
                    interval.as_secs()
                ));
            }
            Event::Refreshed => self.line("refreshed the cached token through the router"),
            Event::RefreshRejected { reason } => {
                self.line(&format!(
                    "the cached token could not be refreshed ({reason}); asking for a new one"
                ));
            }
            Event::UsingCachedAfterError { reason } => {
                self.line(&format!("refresh failed for now ({reason}); using the cached token, which is still valid"));
            }
            Event::Approved { account_id } => {
                self.finish();
                match account_id {
                    Some(a) => self.line(&format!("approved with account {a}")),
                    None => self.line("approved"),
                }
            }
            Event::Cancelled { request_id } => {
                self.finish();
                self.line(&format!("cancelled request {request_id} on the router"));
            }
            Event::Renewing {
                request_id,
                refresh_expires_at,
            } => {
                let at = refresh_expires_at.format("%Y-%m-%d %H:%M UTC");
                self.line(&format!("this login stops refreshing at {at}; asked for a new one (request {request_id}) and keeps using the current token meanwhile"));
            }
            Event::Renewed => self.line("the new login was approved; using it from now on"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_and_refuse_zero_and_overflow() {
        assert_eq!(parse_duration("365d"), Ok(31_536_000));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("30s"), Ok(30));
        for bad in ["", "d", "365", "0d", "1y", "-1d", "99999999999999999999d"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains("365d"), "{bad}: {error}");
        }
    }
}

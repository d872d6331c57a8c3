//! Wiring: open the database, build the clients and the router, serve, and stop cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::control_browser::ControlBrowser;
use crate::crypto::Sealer;
use crate::db::batch::InsertBatcher;
use crate::db::lock::DbLock;
use crate::db::{keys, Db};
use crate::domain::secret;
use crate::egress::Egress;
use crate::metrics::Metrics;
use crate::notify::{sender, Outbox};
use crate::oauth::OAuthClient;
use crate::quota;
use crate::routes::{self, AppState, Shared};
use crate::service::Effects;
use crate::throttle::{CreateLimiter, GuessBudget, PollPacer};
use crate::{reaper, serve, tasks};

pub struct Application {
    listener: TcpListener,
    /// The callback listener (`oauth.callback_bind_addr`), when configured.
    callback_listener: Option<TcpListener>,
    state: AppState,
    /// This process's claim on the database file, held until the service has stopped.
    lock: Option<DbLock>,
}

impl Application {
    /// Locks, opens and migrates the database, then binds `bind_addr` (and
    /// `oauth.callback_bind_addr`, when set).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("cannot listen on bind_addr {}", config.bind_addr))?;
        Self::build_with_listener(config, listener).await
    }

    /// Like [`build`](Self::build) on a listener the caller bound, so tests can know the
    /// port (and so the `redirect_uri`) before the app exists.
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let callback =
            match config.callback_bind_addr() {
                Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on oauth.callback_bind_addr {addr}")
                })?),
                None => None,
            };
        Self::build_with_listeners(config, listener, callback).await
    }

    /// Like [`build_with_listener`](Self::build_with_listener), with the callback listener
    /// bound by the caller too (it wins over `oauth.callback_bind_addr`).
    pub async fn build_with_listeners(
        config: Config,
        listener: TcpListener,
        callback_listener: Option<TcpListener>,
    ) -> anyhow::Result<Self> {
        // SQLite has one writer, so one router per file; on PostgreSQL several are the point.
        let lock = match crate::db::is_postgres(&config.database_url) {
            true => None,
            false => DbLock::acquire(&config.database_url)?,
        };
        let db = open_db(&config).await?;
        let lifetime = config.oauth.refresh_token_lifetime_secs;
        if lifetime > 0 {
            let set = crate::db::tokens::backfill_refresh_deadlines(&db, lifetime)
                .await
                .context("setting the refresh deadline of stored bundles")?;
            if set > 0 {
                tracing::info!(
                    bundles = set,
                    "gave stored bundles their refresh-token deadline"
                );
            }
        }
        let effects = Effects::new(Outbox::from_config(&config), db.read_connections());
        let db = db.with_hooks(effects.clone());
        let salt = crate::db::settings::session_salt(&db)
            .await
            .context("reading the console sessions' salt")?;
        Self::assemble(
            config,
            db,
            effects,
            &salt,
            listener,
            callback_listener,
            lock,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        config: Config,
        db: Db,
        effects: Arc<Effects>,
        session_salt: &[u8],
        listener: TcpListener,
        callback_listener: Option<TcpListener>,
        lock: Option<DbLock>,
    ) -> anyhow::Result<Self> {
        let egress = Egress::new(&config)?;
        let metrics = Arc::new(Metrics::default());
        let control_browser = ControlBrowser::new(
            &config.control_browser,
            egress.direct().clone(),
            metrics.clone(),
        )
        .context("control_browser settings")?;
        let webhooks = egress.direct().clone();
        let oauth = OAuthClient::new(&config, egress, metrics.clone()).context("oauth settings")?;
        let admin_token = match config.admin_token() {
            Some(token) => token.to_owned(),
            None => generated_admin_token(),
        };
        let poll_pacer = PollPacer::new(Duration::from_secs(config.requests.poll_interval_secs));
        let create_limiter = CreateLimiter::new(config.limits.creates_per_minute_per_ip);
        let creates = InsertBatcher::spawn(db.clone());
        let guesses = GuessBudget::new(config.limits.failed_sign_ins_per_minute_per_ip);
        let reaper_health = reaper::Health::new(&config.reaper);
        let submit_token_hash = config.submit_token().map(secret::hash);
        let trusted_proxies = config.trusted_proxies();
        let state = AppState::new(Shared {
            db,
            effects,
            creates,
            config: Arc::new(config),
            oauth: Arc::new(oauth),
            control_browser: Arc::new(control_browser),
            admin_token_hash: Arc::new(secret::hash(&admin_token)),
            session_binding: Arc::new(secret::session_binding(&admin_token, session_salt)),
            submit_token_hash,
            refresh_locks: Arc::default(),
            poll_pacer: Arc::new(poll_pacer),
            create_limiter: Arc::new(create_limiter),
            guesses: Arc::new(guesses),
            trusted_proxies,
            reaper_health: Arc::new(reaper_health),
            webhook_http: webhooks,
            metrics,
        });
        Ok(Self {
            listener,
            callback_listener,
            state,
            lock,
        })
    }

    /// The application's own database handle (and so its cache), for tests that drive the
    /// reaper as the running service would.
    pub fn db(&self) -> Db {
        self.state.db.clone()
    }

    /// The router this application serves, for driving it without a socket (fuzzing).
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The callback listener's address, when there is one.
    pub fn callback_addr(&self) -> Option<SocketAddr> {
        self.callback_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes: then stops accepting on every listener, finishes
    /// the requests in flight, stops the reaper and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            callback_listener,
            state,
            lock,
        } = self;
        let db = state.db.clone();
        let (stop_reaper, reaper_stop) = watch::channel(false);
        let sender_stop = reaper_stop.clone();
        let sender_stop_for_quota = reaper_stop.clone();
        let shared_stop = reaper_stop.clone();
        let reaper = {
            let (db, cfg) = (db.clone(), state.config.reaper.clone());
            let relogin_warning = Duration::from_secs(state.config.notify.relogin_warning_secs);
            let (metrics, health) = (state.metrics.clone(), state.reaper_health.clone());
            tasks::supervise("reaper", move || {
                reaper::run(
                    db.clone(),
                    cfg.clone(),
                    relogin_warning,
                    metrics.clone(),
                    health.clone(),
                    reaper_stop.clone(),
                )
            })
        };
        let shared = {
            let (db, effects, stop) = (db.clone(), state.effects.clone(), shared_stop);
            let every = Duration::from_secs(state.config.storage.fallback_poll_secs);
            tasks::supervise("change listener", move || {
                crate::service::shared::run(db.clone(), effects.clone(), every, stop.clone())
            })
        };
        let sender = {
            let (db, outbox, http, metrics) = (
                db.clone(),
                state.effects.outbox().clone(),
                state.webhook_http.clone(),
                state.metrics.clone(),
            );
            let settings = sender::Settings {
                timeout: Duration::from_secs(state.config.notify.timeout_secs),
                max_attempts: state.config.notify.max_attempts,
            };
            let stop = sender_stop;
            tasks::supervise("webhook sender", move || {
                sender::run(
                    db.clone(),
                    outbox.clone(),
                    http.clone(),
                    settings.clone(),
                    metrics.clone(),
                    stop.clone(),
                )
            })
        };
        let quota = {
            let (app, stop) = (state.clone(), sender_stop_for_quota);
            tasks::supervise("usage reader", move || {
                quota::run(app.clone(), stop.clone())
            })
        };
        // One shutdown for every listener.
        let (stop, stopped) = watch::channel(false);
        let waiters = state.effects.waiters().clone();
        tokio::spawn(async move {
            shutdown.await;
            // Long polls answer now, with the state as it is, instead of holding the
            // graceful shutdown for their whole wait.
            waiters.close();
            let _ = stop.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        // One set of connection limits over both listeners.
        let listeners = serve::Listeners::new(&state.config.limits, state.metrics.clone());
        let callback = callback_listener.map(|callback_listener| {
            let app = routes::callback_router(state.clone());
            if let Ok(addr) = callback_listener.local_addr() {
                tracing::info!(%addr, "callback listener listening");
            }
            let (listeners, stop) = (listeners.clone(), until_stopped());
            tokio::spawn(async move { listeners.serve(callback_listener, app, stop).await })
        });
        tracing::info!(addr = %listener.local_addr()?, "claude-auth-router listening");
        let served = listeners
            .serve(listener, routes::router(state), until_stopped())
            .await;
        if let Some(callback) = callback {
            match callback.await {
                Ok(Err(e)) => tracing::error!(error = %e, "the callback listener failed"),
                Err(e) => tracing::error!(error = %e, "the callback listener panicked"),
                Ok(Ok(())) => {}
            }
        }
        let _ = stop_reaper.send(true);
        let _ = reaper.await;
        let _ = sender.await;
        let _ = quota.await;
        let _ = shared.await;
        db.close().await;
        drop(lock);
        tracing::info!("claude-auth-router stopped");
        served.context("serving HTTP")
    }
}

/// A random admin token for this run. It is written once to stderr as a plain line, for the
/// person who started the service, and never as a log field: JSON logs go to collectors.
fn generated_admin_token() -> String {
    let token = secret::generate().expose_secret().to_owned();
    eprintln!("{GENERATED_ADMIN_TOKEN_LINE}{token}");
    tracing::warn!(
        "no [admin] token configured; generated one for this run only (printed once on \
         stderr, not logged). Set admin.token (or AUTH_ROUTER_ADMIN__TOKEN) to keep one \
         across restarts"
    );
    token
}

/// The start of the stderr line that shows a generated admin token.
pub const GENERATED_ADMIN_TOKEN_LINE: &str = "generated admin token for this run: ";

/// Opens the database with the configured keys and checks that they open what is stored,
/// and, under `storage.require_sealed`, that nothing is stored unsealed.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    open_db_checked(config, true).await
}

/// Like [`open_db`], but lets plaintext rows through: for `rekey`, which seals them.
pub async fn open_db_to_reseal(config: &Config) -> anyhow::Result<Db> {
    open_db_checked(config, false).await
}

async fn open_db_checked(config: &Config, refuse_unsealed: bool) -> anyhow::Result<Db> {
    let sealer = Sealer::from_config(&config.storage)?;
    let db = Db::connect_sealed(&config.database_url, sealer)
        .await
        .with_context(|| format!("cannot open database_url {}", config.database_url))?;
    let checked = keys::check(&db).await.and_then(|report| {
        if refuse_unsealed && db.sealer().requires_sealed() && report.plaintext > 0 {
            Err(keys::KeyCheckError::Unsealed(report.plaintext))
        } else {
            Ok(report)
        }
    });
    let report = match checked {
        Ok(report) => report,
        Err(e) => {
            db.close().await;
            return Err(e.into());
        }
    };
    match db.sealer().current_id() {
        None => tracing::warn!(
            "no storage.encryption_key: tokens and PKCE verifiers are stored in plaintext; \
             set one (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
        ),
        Some(current) => {
            tracing::info!(key_id = current, in_use = ?report.key_ids, "tokens are encrypted at rest");
            if report.plaintext > 0 || report.key_ids.iter().any(|k| k != current) {
                tracing::warn!(
                    plaintext = report.plaintext,
                    "some stored values are not sealed with the current key; run `claude-auth-router rekey`"
                );
            }
        }
    }
    Ok(db)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}

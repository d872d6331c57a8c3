//! Configuration loading: the committed file, environment overrides, and errors that name
//! the key. `figment::Jail` serialises tests that touch the environment.

// Jail's closures must return `figment::Result`, whose error is large; that is figment's API.
#![allow(clippy::result_large_err)]

use std::path::Path;

use claude_auth_router::Config;
use figment::Jail;

fn committed_config() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
}

fn load_error(jail_setup: impl FnOnce(&mut Jail) -> figment::Result<()>) -> String {
    let mut message = String::new();
    Jail::expect_with(|jail| {
        jail_setup(jail)?;
        message = Config::load(None)
            .expect_err("configuration must be refused")
            .to_string();
        Ok(())
    });
    message
}

#[test]
fn the_committed_config_toml_is_valid_and_matches_the_documented_defaults() {
    Jail::expect_with(|_| {
        let config = Config::load(Some(committed_config())).expect("committed config loads");
        let defaults = Config::default();
        assert_eq!(config.bind_addr, defaults.bind_addr);
        assert_eq!(config.database_url, defaults.database_url);
        assert_eq!(config.requests.ttl_secs, 600);
        assert_eq!(config.requests.poll_interval_secs, 5);
        assert_eq!(config.reaper.interval_secs, 30);
        assert_eq!(
            config.oauth.redirect_uri,
            "http://127.0.0.1:7777/oauth/callback"
        );
        assert_eq!(
            config.oauth.auth_url, "http://127.0.0.1:7780/authorize",
            "the fake upstream"
        );
        assert_eq!(config.control_browser.base_url, "http://127.0.0.1:7780");
        assert_eq!(config.control_browser.timeout_secs, 10);
        assert!(config.admin_token().is_none());
        assert!(config.accounts.is_empty());
        assert_eq!(
            config.reaper.retain_terminal_secs,
            defaults.reaper.retain_terminal_secs
        );
        assert_eq!(
            config.reaper.retain_audit_secs,
            defaults.reaper.retain_audit_secs
        );
        assert_eq!(config.limits.creates_per_minute_per_ip, 60);
        assert_eq!(config.limits.max_open_requests_per_client, 10);
        assert_eq!(
            config.limits.request_timeout_secs,
            defaults.limits.request_timeout_secs
        );
        assert_eq!(
            config.limits.max_concurrent_requests,
            defaults.limits.max_concurrent_requests
        );
        assert_eq!(config.log.format, defaults.log.format);
        Ok(())
    });
}

#[test]
fn environment_variables_override_nested_keys() {
    Jail::expect_with(|jail| {
        jail.create_file("config.toml", "[oauth]\nclient_id = \"from-file\"\nauth_url = \"http://a.example/auth\"\ntoken_url = \"http://a.example/token\"\n")?;
        jail.set_env("AUTH_ROUTER_OAUTH__CLIENT_ID", "from-env");
        jail.set_env("AUTH_ROUTER_REQUESTS__TTL_SECS", "120");
        jail.set_env(
            "AUTH_ROUTER_ADMIN__TOKEN",
            "admin-from-env-0123456789abcdefghijkl",
        );

        let config = Config::load(None).expect("loads");

        assert_eq!(config.oauth.client_id, "from-env");
        assert_eq!(config.requests.ttl_secs, 120);
        assert_eq!(
            config.admin_token(),
            Some("admin-from-env-0123456789abcdefghijkl")
        );
        Ok(())
    });
}

#[test]
fn the_client_commands_variables_do_not_disturb_the_server() {
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_ROUTER_URL", "http://127.0.0.1:7777");
        jail.set_env("AUTH_ROUTER_ADMIN_TOKEN", "for-the-admin-cli");

        let config = Config::load(Some(committed_config())).expect("loads");

        assert!(
            config.admin_token().is_none(),
            "AUTH_ROUTER_ADMIN_TOKEN is the CLI's, not admin.token"
        );
        Ok(())
    });
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let message = load_error(|jail| {
        jail.set_env("AUTH_ROUTER_OAUTH__CLIENT_ID", "x");
        jail.set_env("AUTH_ROUTER_REQUESTS__TTL_SECS", "soon");
        Ok(())
    });
    assert!(message.contains("requests.ttl_secs"), "{message}");
}

#[test]
fn an_unknown_key_in_the_file_or_the_environment_is_named() {
    let message = load_error(|jail| {
        jail.create_file("config.toml", "[oauth]\nclient_idd = \"typo\"\n")
            .map(|_| ())
    });
    assert!(message.contains("client_idd"), "{message}");

    let message = load_error(|jail| {
        jail.set_env("AUTH_ROUTER_REQUSTS__TTL_SECS", "5");
        Ok(())
    });
    assert!(message.contains("requsts"), "{message}");
}

#[test]
fn invalid_values_are_refused_with_the_key_that_holds_them() {
    let base = "[oauth]\nclient_id = \"c\"\nauth_url = \"http://p.example/a\"\ntoken_url = \"http://p.example/t\"\n";
    let cases = [
        ("", "oauth.client_id"),
        ("AUTH_ROUTER_OAUTH__AUTH_URL=not a url", "oauth.auth_url"),
        (
            "AUTH_ROUTER_OAUTH__TOKEN_URL=ftp://p.example/t",
            "oauth.token_url",
        ),
        (
            "AUTH_ROUTER_OAUTH__REDIRECT_URI=http://127.0.0.1:7777/",
            "oauth.redirect_uri",
        ),
        (
            "AUTH_ROUTER_OAUTH__REDIRECT_URI=http://127.0.0.1:7777/v1/cb",
            "oauth.redirect_uri",
        ),
        (
            "AUTH_ROUTER_OAUTH__REDIRECT_URI=http://127.0.0.1:7777/{id}",
            "oauth.redirect_uri",
        ),
        ("AUTH_ROUTER_REQUESTS__TTL_SECS=0", "requests.ttl_secs"),
        (
            "AUTH_ROUTER_REQUESTS__POLL_INTERVAL_SECS=9999",
            "requests.poll_interval_secs",
        ),
        (
            "AUTH_ROUTER_REAPER__INTERVAL_SECS=0",
            "reaper.interval_secs",
        ),
        ("AUTH_ROUTER_OAUTH__TIMEOUT_SECS=0", "oauth.timeout_secs"),
        (
            "AUTH_ROUTER_CONTROL_BROWSER__BASE_URL=nope",
            "control_browser.base_url",
        ),
        ("AUTH_ROUTER_DATABASE_URL=mysql://x", "database_url"),
        ("AUTH_ROUTER_BIND_ADDR=localhost", "bind_addr"),
        (
            "AUTH_ROUTER_OAUTH__TOKEN_REQUEST_FORMAT=xml",
            "oauth.token_request_format",
        ),
        (
            "AUTH_ROUTER_OAUTH__DEFAULT_SCOPES=[\"a b\"]",
            "oauth.default_scopes",
        ),
    ];
    for (env, key) in cases {
        let message = load_error(|jail| {
            if env.is_empty() {
                jail.create_file("config.toml", "")?;
            } else {
                jail.create_file("config.toml", base)?;
                let (k, v) = env.split_once('=').unwrap();
                jail.set_env(k, v);
            }
            Ok(())
        });
        assert!(message.contains(key), "{env}: {message}");
    }
}

#[test]
fn duplicate_accounts_and_default_scopes_outside_the_allow_list_are_refused() {
    let base = "[oauth]\nclient_id = \"c\"\nauth_url = \"http://p.example/a\"\ntoken_url = \"http://p.example/t\"\n";
    let message = load_error(|jail| {
        jail.create_file(
            "config.toml",
            &format!("{base}[[accounts]]\nid = 1\n[[accounts]]\nid = 1\n"),
        )
        .map(|_| ())
    });
    assert!(
        message.contains("accounts") && message.contains("twice"),
        "{message}"
    );

    let message = load_error(|jail| {
        jail.create_file(
            "config.toml",
            &format!("{base}default_scopes = [\"a\"]\nallowed_scopes = [\"b\"]\n"),
        )
        .map(|_| ())
    });
    assert!(message.contains("oauth.default_scopes"), "{message}");
}

#[test]
fn a_missing_config_file_named_on_the_command_line_is_an_error() {
    let message = Config::load(Some(Path::new("/nonexistent/router.toml")))
        .unwrap_err()
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
}

const BASE: &str = "[oauth]\nclient_id = \"c\"\nauth_url = \"http://p.example/a\"\ntoken_url = \"http://p.example/t\"\n";

fn error_with_env(key: &str, value: &str) -> String {
    load_error(|jail| {
        jail.create_file("config.toml", BASE)?;
        jail.set_env(key, value);
        Ok(())
    })
}

#[test]
fn a_callback_path_the_router_already_serves_is_a_configuration_error_not_a_panic() {
    for path in [
        "/readyz",
        "/healthz",
        "/metrics",
        "/admin",
        "/admin/session",
        "/v1",
        "/v1/token-requests",
        "/v1/audit",
    ] {
        let message = error_with_env(
            "AUTH_ROUTER_OAUTH__REDIRECT_URI",
            &format!("http://127.0.0.1:7777{path}"),
        );
        assert!(
            message.contains("oauth.redirect_uri") && message.contains(path),
            "{path}: {message}"
        );
    }
}

#[test]
fn every_duration_key_out_of_range_is_refused_with_its_name() {
    let huge = u64::MAX.to_string();
    for key in [
        "requests.ttl_secs",
        "requests.poll_interval_secs",
        "reaper.interval_secs",
        "reaper.retain_terminal_secs",
        "reaper.retain_audit_secs",
        "oauth.timeout_secs",
        "control_browser.timeout_secs",
        "limits.request_timeout_secs",
    ] {
        let var = format!("AUTH_ROUTER_{}", key.to_uppercase().replace('.', "__"));
        let message = error_with_env(&var, &huge);
        assert!(
            message.contains(key) && message.contains("between"),
            "{key}: {message}"
        );
    }
    // The value that once overflowed the reaper's date arithmetic.
    let message = error_with_env(
        "AUTH_ROUTER_REAPER__RETAIN_TERMINAL_SECS",
        "9223372036854775",
    );
    assert!(message.contains("reaper.retain_terminal_secs"), "{message}");
}

#[test]
fn a_configured_admin_token_shorter_than_32_characters_is_refused() {
    let message = error_with_env(
        "AUTH_ROUTER_ADMIN__TOKEN",
        "short-admin-token-31-characters",
    );
    assert!(message.contains("admin.token"), "{message}");

    Jail::expect_with(|jail| {
        jail.create_file("config.toml", BASE)?;
        jail.set_env(
            "AUTH_ROUTER_ADMIN__TOKEN",
            "a-long-enough-admin-token-of-32-c",
        );
        Config::load(None).expect("32 characters or more is accepted");
        Ok(())
    });
}

#[test]
fn the_claude_preset_fills_every_key_left_unset_and_an_explicit_key_wins() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "config.toml",
            "[oauth]\nprovider = \"claude\"\ntoken_url = \"https://moved.example/token\"\n",
        )?;
        jail.set_env("AUTH_ROUTER_OAUTH__CALLBACK_BIND_ADDR", "127.0.0.1:60000");
        let config = Config::load(None).expect("the preset alone is a valid configuration");
        let oauth = &config.oauth;
        assert_eq!(oauth.auth_url, "https://claude.com/cai/oauth/authorize");
        assert_eq!(
            oauth.token_url, "https://moved.example/token",
            "the file wins"
        );
        assert_eq!(
            oauth.callback_bind_addr, "127.0.0.1:60000",
            "the environment wins"
        );
        assert_eq!(oauth.client_id, "9d1c250a-e61b-44d9-88ed-5944d1962f5e");
        assert_eq!(
            oauth.default_scopes,
            [
                "user:profile",
                "user:inference",
                "user:sessions:claude_code",
                "user:mcp_servers",
                "user:file_upload"
            ]
        );
        assert_eq!(
            oauth.extra_auth_params.get("code").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            oauth.token_request_format,
            claude_auth_router::config::TokenRequestFormat::Json
        );
        assert!(oauth.state_in_token_request);
        assert_eq!(oauth.redirect_uri, "http://localhost:54545/callback");
        assert!(!config.requests.share_refresh_token);
        Ok(())
    });
}

#[test]
fn the_generic_provider_presets_nothing() {
    Jail::expect_with(|jail| {
        jail.create_file("config.toml", BASE)?;
        let config = Config::load(None).unwrap();
        assert_eq!(
            config.oauth.provider,
            claude_auth_router::config::Provider::Generic
        );
        assert!(!config.oauth.state_in_token_request);
        assert!(config.oauth.callback_bind_addr.is_empty());
        assert!(config.oauth.extra_auth_params.is_empty());
        assert_eq!(
            config.oauth.token_request_format,
            claude_auth_router::config::TokenRequestFormat::Form
        );
        Ok(())
    });
    let message = error_with_env("AUTH_ROUTER_OAUTH__PROVIDER", "anthropic");
    assert!(message.contains("oauth.provider"), "{message}");
}

#[test]
fn bad_proxies_emails_and_callback_addresses_are_refused_with_their_key() {
    for (env, value, key) in [
        (
            "AUTH_ROUTER_OAUTH__PROXY",
            "ftp://p.example:21",
            "oauth.proxy",
        ),
        (
            "AUTH_ROUTER_OAUTH__CALLBACK_BIND_ADDR",
            "localhost",
            "oauth.callback_bind_addr",
        ),
    ] {
        let message = error_with_env(env, value);
        assert!(message.contains(key), "{env}: {message}");
    }
    let message = load_error(|jail| {
        jail.create_file(
            "config.toml",
            &format!("{BASE}[[accounts]]\nid = 1\nemail = \"nobody\"\n"),
        )
        .map(|_| ())
    });
    assert!(message.contains("accounts.email"), "{message}");
    let message = load_error(|jail| {
        jail.create_file(
            "config.toml",
            &format!("{BASE}[[accounts]]\nid = 1\nproxy = \"gopher://team:pw-secret@p:70\"\n"),
        )
        .map(|_| ())
    });
    assert!(
        message.contains("accounts.proxy") && !message.contains("pw-secret"),
        "{message}"
    );
}

#[test]
fn the_connection_limits_are_validated_with_their_key() {
    for (key, value) in [
        ("limits.max_connections", "0"),
        ("limits.max_connections_per_ip", "5000"),
        ("limits.idle_timeout_secs", "0"),
        ("limits.idle_timeout_secs", "3601"),
        ("limits.header_read_timeout_secs", "0"),
        ("limits.header_read_timeout_secs", "3601"),
        ("limits.shutdown_grace_secs", "0"),
        ("limits.shutdown_grace_secs", "3601"),
        ("limits.max_waiters_per_request", "0"),
    ] {
        let var = format!("AUTH_ROUTER_{}", key.to_uppercase().replace('.', "__"));
        let message = error_with_env(&var, value);
        assert!(message.contains(key), "{key}={value}: {message}");
    }
}

#[test]
fn an_account_label_with_a_bidi_override_is_refused_with_its_key() {
    let message = load_error(|jail| {
        jail.create_file(
            "config.toml",
            &format!("{BASE}[[accounts]]\nid = 1\nlabel = \"team\u{202E}lanosrep\"\n"),
        )
        .map(|_| ())
    });
    assert!(message.contains("accounts.label"), "{message}");
}

#[test]
fn an_account_kind_other_than_claude_ai_or_console_is_refused_with_its_key() {
    let message = load_error(|jail| {
        jail.create_file(
            "config.toml",
            &format!("{BASE}[[accounts]]\nid = 1\nkind = \"enterprise\"\n"),
        )
        .map(|_| ())
    });
    assert!(message.contains("accounts.kind"), "{message}");
    let message = load_error(|jail| {
        jail.create_file(
            "config.toml",
            &format!("{BASE}[[accounts]]\nid = 1\nauth_url = \"not a url\"\n"),
        )
        .map(|_| ())
    });
    assert!(message.contains("accounts.auth_url"), "{message}");
}

#[test]
fn a_database_urls_password_never_shows_in_debug_display_or_check_config() {
    let url: claude_auth_router::config::DatabaseUrl =
        "postgres://router:s3cret-pw@db.example:5432/auth"
            .to_owned()
            .into();
    let config = Config {
        database_url: url.clone(),
        ..Config::default()
    };

    let shown = [
        format!("{url}"),
        format!("{url:?}"),
        format!("{config:?}"),
        config.to_redacted_toml().unwrap(),
    ];

    for text in &shown {
        assert!(!text.contains("s3cret-pw"), "{text}");
    }
    assert!(
        shown[0].contains("router:REDACTED@db.example:5432/auth"),
        "{}",
        shown[0]
    );
    assert_eq!(
        url.expose(),
        "postgres://router:s3cret-pw@db.example:5432/auth"
    );
    let sqlite: claude_auth_router::config::DatabaseUrl =
        "sqlite://auth-router.db".to_owned().into();
    assert_eq!(sqlite.to_string(), "sqlite://auth-router.db");
}

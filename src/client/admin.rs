//! `claude-auth-router admin`: the operator's actions from a terminal, against the same API
//! as the console. Readable tables by default, `--json` for scripts.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ClientError, RouterClient};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The router's URL.
    #[arg(
        long,
        env = "AUTH_ROUTER_URL",
        default_value = "http://127.0.0.1:7777",
        global = true
    )]
    pub router: String,
    /// Print the router's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: AdminAction,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// List requests, newest first.
    List {
        /// Only this status (pending, in_progress, approved, …).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Approve: open the login in the control browser with this account.
    Approve {
        id: Uuid,
        #[arg(long)]
        account: u32,
    },
    /// Deny a pending or in-progress request.
    Deny { id: Uuid },
    /// Revoke an approved request: its stored tokens are deleted.
    Revoke { id: Uuid },
    /// Show a request's audit trail, oldest first.
    Audit { id: Uuid },
    /// Show who changed which client or account, newest first.
    Events {
        /// Only this subject's changes: client:ID or account:ID.
        #[arg(long, value_name = "client:ID|account:ID")]
        subject: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Enrolled clients: add (prints the key once), list, rotate (prints the new key once),
    /// disable, enable, update, remove.
    #[command(subcommand)]
    Clients(ClientsAction),
    /// The configured accounts: list (paused, live tokens, health), pause, resume.
    #[command(subcommand)]
    Accounts(AccountsAction),
    /// List recent webhook deliveries, newest first, with status and attempts.
    Webhooks {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// First queue a `test` event to every webhook.
        #[arg(long)]
        test: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsAction {
    Add {
        name: String,
        /// An allowed scope; repeat for several [default: any the router allows].
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An allowed account id; repeat for several [default: any].
        #[arg(long = "account")]
        accounts: Vec<u32>,
        /// Approve its requests without an operator.
        #[arg(long)]
        auto_approve: bool,
        /// The longest long-lived token it may ask for (365d, 12h, ...) [default: none].
        #[arg(long, value_name = "DURATION", value_parser = super::command::parse_duration)]
        max_token_lifetime: Option<u64>,
    },
    List,
    Rotate {
        id: Uuid,
    },
    Disable {
        id: Uuid,
    },
    Enable {
        id: Uuid,
    },
    Update {
        id: Uuid,
        #[arg(long = "scope")]
        scopes: Option<Vec<String>>,
        #[arg(long = "account")]
        accounts: Option<Vec<u32>>,
        #[arg(long)]
        auto_approve: Option<bool>,
        /// The longest long-lived token it may ask for (365d, 12h, ...).
        #[arg(long, value_name = "DURATION", value_parser = super::command::parse_duration)]
        max_token_lifetime: Option<u64>,
    },
    Remove {
        id: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsAction {
    List,
    Pause { id: u32 },
    Resume { id: u32 },
}

/// Runs the command with the admin token; returns the exit code (0 done, 1 error, 2 usage).
pub async fn run(args: AdminArgs, admin_token: Option<String>) -> u8 {
    let result = async {
        let token = admin_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            ClientError::Usage("set AUTH_ROUTER_ADMIN_TOKEN to the router's admin token".into())
        })?;
        let client = RouterClient::new(&args.router)?;
        execute(&client, &token, &args.action).await
    }
    .await;
    match result {
        Ok(answer) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&answer).unwrap_or_default()
                );
            } else {
                print!("{}", render(&args.action, &answer));
            }
            0
        }
        Err(e) => {
            eprintln!("claude-auth-router: {e}");
            match e {
                ClientError::Usage(_) => 2,
                _ => 1,
            }
        }
    }
}

async fn execute(
    client: &RouterClient,
    token: &str,
    action: &AdminAction,
) -> Result<Value, ClientError> {
    match action {
        AdminAction::List { status, limit } => {
            let mut query = format!("/v1/token-requests?limit={limit}");
            if let Some(status) = status {
                query.push_str(&format!(
                    "&status={}",
                    url::form_urlencoded::byte_serialize(status.as_bytes()).collect::<String>()
                ));
            }
            client.admin_get(&query, token).await
        }
        AdminAction::Approve { id, account } => {
            let body = json!({ "account_id": account });
            client
                .admin_post(
                    &format!("/v1/token-requests/{id}/select-account"),
                    token,
                    &body,
                )
                .await
        }
        AdminAction::Deny { id } => {
            client
                .admin_post(&format!("/v1/token-requests/{id}/deny"), token, &json!({}))
                .await
        }
        AdminAction::Revoke { id } => {
            client
                .admin_post(
                    &format!("/v1/token-requests/{id}/revoke"),
                    token,
                    &json!({}),
                )
                .await
        }
        AdminAction::Events { subject, limit } => {
            let mut query = format!("/v1/admin-events?limit={limit}");
            if let Some(subject) = subject {
                query.push_str(&format!(
                    "&subject={}",
                    url::form_urlencoded::byte_serialize(subject.as_bytes()).collect::<String>()
                ));
            }
            client.admin_get(&query, token).await
        }
        AdminAction::Audit { id } => {
            client
                .admin_get(&format!("/v1/audit?request_id={id}&limit=1000"), token)
                .await
        }
        AdminAction::Clients(action) => {
            let post =
                |path: String| async move { client.admin_post(&path, token, &json!({})).await };
            match action {
                ClientsAction::Add {
                    name,
                    scopes,
                    accounts,
                    auto_approve,
                    max_token_lifetime,
                } => {
                    let body = json!({
                        "name": name, "scopes": scopes, "accounts": accounts,
                        "auto_approve": auto_approve,
                        "max_token_lifetime_secs": max_token_lifetime.unwrap_or(0),
                    });
                    client.admin_post("/v1/clients", token, &body).await
                }
                ClientsAction::List => client.admin_get("/v1/clients", token).await,
                ClientsAction::Rotate { id } => post(format!("/v1/clients/{id}/rotate-key")).await,
                ClientsAction::Disable { id } => post(format!("/v1/clients/{id}/disable")).await,
                ClientsAction::Enable { id } => post(format!("/v1/clients/{id}/enable")).await,
                ClientsAction::Update {
                    id,
                    scopes,
                    accounts,
                    auto_approve,
                    max_token_lifetime,
                } => {
                    let mut body = serde_json::Map::new();
                    if let Some(secs) = max_token_lifetime {
                        body.insert("max_token_lifetime_secs".into(), json!(secs));
                    }
                    if let Some(s) = scopes {
                        body.insert("scopes".into(), json!(s));
                    }
                    if let Some(a) = accounts {
                        body.insert("accounts".into(), json!(a));
                    }
                    if let Some(a) = auto_approve {
                        body.insert("auto_approve".into(), json!(a));
                    }
                    client
                        .admin_send(
                            reqwest::Method::PATCH,
                            &format!("/v1/clients/{id}"),
                            token,
                            &Value::Object(body),
                        )
                        .await
                }
                ClientsAction::Remove { id } => {
                    client
                        .admin_send(
                            reqwest::Method::DELETE,
                            &format!("/v1/clients/{id}"),
                            token,
                            &json!({}),
                        )
                        .await
                }
            }
        }
        AdminAction::Accounts(action) => match action {
            AccountsAction::List => client.admin_get("/v1/accounts", token).await,
            AccountsAction::Pause { id } => {
                client
                    .admin_post(&format!("/v1/accounts/{id}/pause"), token, &json!({}))
                    .await
            }
            AccountsAction::Resume { id } => {
                client
                    .admin_post(&format!("/v1/accounts/{id}/resume"), token, &json!({}))
                    .await
            }
        },
        AdminAction::Webhooks { limit, test } => {
            if *test {
                client
                    .admin_post("/v1/webhooks/test", token, &json!({}))
                    .await?;
            }
            client
                .admin_get(&format!("/v1/webhooks/deliveries?limit={limit}"), token)
                .await
        }
    }
}

fn render(action: &AdminAction, answer: &Value) -> String {
    let text = |v: &Value, k: &str| match &v[k] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match action {
        AdminAction::List { .. } => {
            let rows: Vec<Vec<String>> = items(answer, "requests")
                .iter()
                .map(|r| {
                    [
                        "request_id",
                        "status",
                        "client_name",
                        "hostname",
                        "account_id",
                        "created_at",
                        "expires_at",
                    ]
                    .iter()
                    .map(|k| text(r, k))
                    .chain([lifetime(&r["lifetime_secs"])])
                    .collect()
                })
                .collect();
            table(
                &[
                    "ID", "STATUS", "CLIENT", "HOST", "ACCOUNT", "CREATED", "EXPIRES", "LIFETIME",
                ],
                &rows,
            )
        }
        AdminAction::Audit { .. } => {
            let rows: Vec<Vec<String>> = items(answer, "events")
                .iter()
                .map(|e| {
                    let change = format!("{} -> {}", text(e, "from_status"), text(e, "to_status"));
                    vec![
                        text(e, "at"),
                        text(e, "actor"),
                        text(e, "action"),
                        change,
                        text(e, "detail"),
                    ]
                })
                .collect();
            table(&["AT", "ACTOR", "ACTION", "STATUS", "DETAIL"], &rows)
        }
        AdminAction::Events { .. } => {
            let rows: Vec<Vec<String>> = items(answer, "events")
                .iter()
                .map(|e| {
                    ["at", "actor", "subject", "action", "detail"]
                        .iter()
                        .map(|k| text(e, k))
                        .collect()
                })
                .collect();
            table(&["AT", "ACTOR", "SUBJECT", "ACTION", "DETAIL"], &rows)
        }
        AdminAction::Clients(ClientsAction::List) => {
            let rows: Vec<Vec<String>> = items(answer, "clients")
                .iter()
                .map(|c| {
                    let list = |k: &str| {
                        let joined = items(c, k)
                            .iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(" ");
                        if joined.is_empty() { "any".to_owned() } else { joined }
                    };
                    vec![
                        text(c, "client_id"),
                        text(c, "name"),
                        list("scopes"),
                        list("accounts"),
                        text(c, "auto_approve"),
                        text(c, "disabled"),
                        text(c, "last_used_at"),
                    ]
                })
                .collect();
            table(
                &["ID", "NAME", "SCOPES", "ACCOUNTS", "AUTO", "DISABLED", "LAST USED"],
                &rows,
            )
        }
        AdminAction::Clients(ClientsAction::Add { .. } | ClientsAction::Rotate { .. }) => format!(
            "client {}: key {}\n(shown this once: give it to the client, e.g. as AUTH_ROUTER_CLIENT_KEY or a --client-key-file)\n",
            text(answer, "client_id"),
            text(answer, "client_key"),
        ),
        AdminAction::Clients(_) => format!("{answer}\n"),
        AdminAction::Accounts(AccountsAction::List) => {
            let rows: Vec<Vec<String>> = items(answer, "accounts")
                .iter()
                .map(|a| {
                    [
                        "id",
                        "label",
                        "email",
                        "paused",
                        "live_tokens",
                    ]
                    .iter()
                    .map(|k| text(a, k))
                    .chain([
                        percent(&a["usage"]["five_hour"]),
                        percent(&a["usage"]["seven_day"]),
                        text(a, "soonest_relogin_at"),
                        text(a, "last_approved_at"),
                        text(a, "last_failure_at"),
                    ])
                    .collect()
                })
                .collect();
            table(
                &[
                    "ID",
                    "LABEL",
                    "EMAIL",
                    "PAUSED",
                    "LIVE",
                    "5H",
                    "7D",
                    "RELOGIN BY",
                    "LAST APPROVED",
                    "LAST FAILURE",
                ],
                &rows,
            )
        }
        AdminAction::Accounts(_) => format!(
            "account {} paused: {}\n",
            text(answer, "id"),
            text(answer, "paused")
        ),
        AdminAction::Webhooks { .. } => {
            let rows: Vec<Vec<String>> = items(answer, "deliveries")
                .iter()
                .map(|d| {
                    [
                        "id",
                        "webhook",
                        "event_type",
                        "request_id",
                        "status",
                        "attempts",
                        "updated_at",
                        "last_error",
                    ]
                    .iter()
                    .map(|k| text(d, k))
                    .collect()
                })
                .collect();
            table(
                &[
                    "ID", "WEBHOOK", "EVENT", "REQUEST", "STATUS", "ATTEMPTS", "UPDATED", "ERROR",
                ],
                &rows,
            )
        }
        AdminAction::Approve { .. } => format!(
            "request {} is {} with account {}: the control browser opened the login\n",
            text(answer, "request_id"),
            text(answer, "status"),
            text(answer, "account_id"),
        ),
        AdminAction::Deny { .. } | AdminAction::Revoke { .. } => {
            format!(
                "request {} is {}\n",
                text(answer, "request_id"),
                text(answer, "status")
            )
        }
    }
}

/// A usage window's utilization as `37%`, or `-` with no reading.
fn percent(window: &Value) -> String {
    window["utilization"]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |u| format!("{u:.0}%"))
}

/// A long-lived token's lifetime in the largest whole unit (`365d`), or `-`.
fn lifetime(secs: &Value) -> String {
    let Some(secs) = secs.as_u64() else {
        return "-".to_owned();
    };
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .iter()
        .find(|(unit, _)| secs % unit == 0)
        .map_or_else(
            || format!("{secs}s"),
            |(unit, name)| format!("{}{name}", secs / unit),
        )
}

fn items<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    answer[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Left-aligned columns, two spaces apart; "(none)" for an empty list.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_say_when_empty() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned()],
            vec!["bbb".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table(&["H1", "H2"], &rows),
            "H1   H2\na    long value\nbbb  x\n"
        );
        assert_eq!(table(&["H1"], &[]), "(none)\n");
    }

    #[test]
    fn lifetimes_and_percentages_print_in_their_largest_whole_unit() {
        assert_eq!(lifetime(&json!(31_536_000)), "365d");
        assert_eq!(lifetime(&json!(7200)), "2h");
        assert_eq!(lifetime(&json!(90)), "90s");
        assert_eq!(lifetime(&Value::Null), "-");
        assert_eq!(percent(&json!({"utilization": 37.4})), "37%");
        assert_eq!(percent(&Value::Null), "-");
    }
}

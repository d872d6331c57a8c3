//! `cargo run -p fake-upstream`: the fake provider and control browser for the README
//! walkthrough, on the address the committed `config.toml` expects.

use std::time::Duration;

use fake_upstream::{BrowserMode, FakeUpstream, Options, Provider};

const USAGE: &str = "usage: fake-upstream [--listen ADDR] [--mode auto-approve|auto-deny|record|fail] [--client-secret S] [--provider generic|claude] [--email ACCOUNT_ID=ADDRESS]... [--usage ACCOUNT_ID=FIVE_HOUR,SEVEN_DAY]... [--refresh-token-expires-in SECS]";

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:7780".to_owned();
    let mut mode = BrowserMode::AutoApprove;
    let mut options = Options::default();
    let mut usage = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| exit(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--listen" => listen = value(),
            "--client-secret" => options.client_secret = Some(value()),
            "--provider" => {
                options.provider = match value().as_str() {
                    "generic" => Provider::Generic,
                    "claude" => Provider::Claude,
                    other => exit(&format!("unknown provider {other}")),
                }
            }
            "--email" => {
                let pair = value();
                let (id, email) = pair
                    .split_once('=')
                    .and_then(|(id, e)| Some((id.parse::<u32>().ok()?, e.to_owned())))
                    .unwrap_or_else(|| exit("--email takes ACCOUNT_ID=ADDRESS"));
                options.emails.insert(id, email);
            }
            "--usage" => {
                let pair = value();
                let parsed = pair.split_once('=').and_then(|(id, windows)| {
                    let (five, seven) = windows.split_once(',')?;
                    Some((
                        id.parse::<u32>().ok()?,
                        five.parse::<f64>().ok()?,
                        seven.parse::<f64>().ok()?,
                    ))
                });
                usage.push(parsed.unwrap_or_else(|| {
                    exit("--usage takes ACCOUNT_ID=FIVE_HOUR,SEVEN_DAY (percentages)")
                }));
            }
            "--refresh-token-expires-in" => {
                let secs = value();
                options.refresh_token_expires_in = Some(
                    secs.parse()
                        .unwrap_or_else(|_| exit("--refresh-token-expires-in takes seconds")),
                );
            }
            "--mode" => {
                mode = match value().as_str() {
                    "auto-approve" => BrowserMode::AutoApprove,
                    "auto-deny" => BrowserMode::AutoDeny,
                    "record" => BrowserMode::Record,
                    "fail" => BrowserMode::Fail,
                    other => exit(&format!("unknown mode {other}")),
                }
            }
            _ => exit(&format!("unknown argument {arg}")),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| exit(&format!("cannot listen on {listen}: {e}")));
    let fake = FakeUpstream::spawn(listener, options);
    fake.set_browser_mode(mode);
    for (id, five_hour, seven_day) in usage {
        fake.set_usage(id, five_hour, seven_day);
    }
    eprintln!(
        "fake-upstream: provider and control browser on {} ({mode:?})",
        fake.base_url()
    );
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let opened = fake.opened();
        for o in &opened[seen..] {
            let outcome = o
                .callback_status
                .map(|s| format!(", callback answered {s}"))
                .unwrap_or_default();
            eprintln!(
                "fake-upstream: opened a login for account {}{outcome}",
                o.account_id
            );
        }
        seen = opened.len();
    }
}

fn exit(message: &str) -> ! {
    eprintln!("fake-upstream: {message}\n{USAGE}");
    std::process::exit(2)
}

//! What the benchmark binaries share: wrk, run and read, its Lua scripts, a free port and
//! where the release binaries are.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One wrk run, as wrk reports it.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
}

/// Runs wrk and reads requests per second, p50, p99 and max latency.
pub fn wrk(url: &str, script: Option<&Path>, secs: u64, connections: u32) -> Load {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk is installed (bench/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let ms = |v: &str| -> f64 {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => f64::NAN,
        }
    };
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", v] => load.rps = v.parse().unwrap_or(f64::NAN),
            ["50%", v] => load.p50_ms = ms(v),
            ["99%", v] => load.p99_ms = ms(v),
            ["Latency", _avg, _stdev, max, ..] => load.max_ms = ms(max),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                load.errors += n.parse::<u64>().unwrap_or(0)
            }
            ["Socket", "errors:", ..] => {
                load.errors += fields
                    .iter()
                    .filter_map(|f| f.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    load
}

/// A wrk script that polls the given requests round-robin, and every `create_every`-th
/// request (0: never) creates one instead: for `create_host` when given, otherwise for a
/// hostname of its own (so the per-hostname open-request limit, on at its default, counts
/// on every create and never refuses one).
pub fn script(
    dir: &Path,
    name: &str,
    requests: &[(String, String)],
    create_every: u32,
    create_host: Option<&str>,
) -> PathBuf {
    let mut lua = String::from("local reqs = {\n");
    for (id, token) in requests {
        let _ = writeln!(lua, "  {{\"{id}\", \"{token}\"}},");
    }
    let host = match create_host {
        Some(host) => format!("'{host}'"),
        None => "\"wrk-\" .. tid .. \"-\" .. i".to_owned(),
    };
    let _ = write!(
        lua,
        r#"}}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local i = 0
local create_every = {create_every}
request = function()
  i = i + 1
  if create_every > 0 and i % create_every == 0 then
    local body = '{{"client_name": "bench", "hostname": "' .. {host} .. '"}}'
    return wrk.format("POST", "/v1/token-requests", {{["Content-Type"] = "application/json"}}, body)
  end
  local r = reqs[(i % #reqs) + 1]
  return wrk.format("GET", "/v1/token-requests/" .. r[1] .. "/status", {{["Authorization"] = "Bearer " .. r[2]}})
end
"#
    );
    let path = dir.join(name);
    std::fs::write(&path, lua).unwrap();
    path
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the release binaries are: this one's directory.
pub fn release_dir() -> PathBuf {
    // target/release/bench -> target/release
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

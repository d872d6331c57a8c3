//! API and CLI tests: the real app on a loopback port, a fresh SQLite file and the fake
//! upstream; the CLI tests run the real `token` command against it.

mod admin_actions;
mod admin_cli;
mod busy;
mod callback;
mod claude;
mod cli;
mod cli_renewal;
mod clients;
mod connections;
mod console;
mod console_browser;
mod create;
mod encryption;
mod flow;
mod helpers;
mod limits;
mod load;
mod long_lived;
mod long_poll;
mod migrations;
mod operations;
mod peers;
mod properties;
mod proxy;
mod races;
mod reaper;
mod receiver;
mod refresh;
mod relogin;
mod restart;
mod revoke;
mod select_account;
mod status_and_admin;
mod usage;
mod webhooks;

//! Which connections are let in: `limits.max_connections` over every listener, and
//! `limits.max_connections_per_ip` per TCP peer address.
//!
//! A refused connection is closed at once, unanswered: answering would cost the very
//! resources (a task, buffers, a write) that the limit is there to protect.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::domain::peer::budget_key;
use crate::metrics::Metrics;

/// Counts the open connections, overall and per address (IPv6 per /64, as every per-address
/// budget: [`budget_key`]). One per process, shared by every
/// listener, so the callback listener cannot be used to go past the cap.
pub struct Gate {
    max: usize,
    /// `0`: no per-address limit.
    max_per_ip: usize,
    open: Mutex<Open>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was closed at accept; the label of
/// `auth_router_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    PerIp,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::PerIp => "per_ip",
        }
    }
}

impl Gate {
    pub fn new(max: usize, max_per_ip: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_ip,
            open: Mutex::default(),
            metrics,
        })
    }

    /// Lets a connection from `peer` in, or says why not (and counts the refusal).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refusal> {
        let key = budget_key(peer);
        let refused = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let from_peer = open.per_ip.get(&key).copied().unwrap_or(0);
            if open.total >= self.max {
                Some(Refusal::MaxConnections)
            } else if self.max_per_ip > 0 && from_peer >= self.max_per_ip {
                Some(Refusal::PerIp)
            } else {
                open.total += 1;
                *open.per_ip.entry(key).or_default() += 1;
                None
            }
        };
        if let Some(refusal) = refused {
            self.metrics.connection_refused(refusal.label());
            return Err(refusal);
        }
        self.metrics.connection_opened(1);
        Ok(Ticket {
            gate: self.clone(),
            key,
        })
    }
}

/// One admitted connection; dropping it (when the connection ends, however) lets the next in.
pub struct Ticket {
    gate: Arc<Gate>,
    key: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        {
            let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
            open.total -= 1;
            if let Some(n) = open.per_ip.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    open.per_ip.remove(&self.key);
                }
            }
        }
        self.gate.metrics.connection_opened(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn past_the_per_address_limit_only_that_address_is_refused_until_one_closes() {
        let gate = Gate::new(10, 2, Arc::new(Metrics::default()));
        let a = ip("127.0.0.2");

        let first = gate.admit(a).unwrap();
        let _second = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::PerIp));
        assert!(
            gate.admit(ip("127.0.0.3")).is_ok(),
            "another address is let in"
        );

        drop(first);
        assert!(gate.admit(a).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn past_the_overall_limit_every_address_is_refused() {
        let gate = Gate::new(2, 0, Arc::new(Metrics::default()));
        let _a = gate.admit(ip("127.0.0.2")).unwrap();
        let _b = gate.admit(ip("127.0.0.3")).unwrap();

        assert_eq!(
            gate.admit(ip("127.0.0.4")).err(),
            Some(Refusal::MaxConnections)
        );
    }
}

//! An account's usage windows, as the provider's usage endpoint reports them: how full the
//! 5-hour and the weekly window are (0–100), and when each resets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One usage window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Window {
    /// Percent used, 0–100.
    pub utilization: f64,
    pub resets_at: Option<DateTime<Utc>>,
}

/// The windows the router reads. Other windows in an answer are ignored; a missing or null
/// window is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    #[serde(default)]
    pub five_hour: Option<Window>,
    #[serde(default)]
    pub seven_day: Option<Window>,
}

/// The windows by name, as events, metrics and audit rows name them.
pub const WINDOWS: [&str; 2] = ["five_hour", "seven_day"];

impl Reading {
    /// Parses an answer of the usage endpoint. `Err` with a short reason (never the body,
    /// which is the provider's text) when it is not the expected shape, or a utilization is
    /// outside 0–100.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let reading: Reading = serde_json::from_slice(body).map_err(|e| {
            format!(
                "the usage answer is not the expected JSON (at line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        for (name, window) in reading.windows() {
            if let Some(w) = window {
                if !(0.0..=100.0).contains(&w.utilization) {
                    return Err(format!(
                        "the usage answer's {name} utilization is outside 0-100"
                    ));
                }
            }
        }
        Ok(reading)
    }

    /// Each window with its name.
    pub fn windows(&self) -> [(&'static str, Option<Window>); 2] {
        [(WINDOWS[0], self.five_hour), (WINDOWS[1], self.seven_day)]
    }

    /// The fuller window's utilization; no reading counts as empty.
    pub fn fullest(&self) -> f64 {
        self.windows()
            .iter()
            .filter_map(|(_, w)| w.map(|w| w.utilization))
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_answer_keeps_the_two_windows_and_ignores_the_rest() {
        let body = br#"{"five_hour": {"utilization": 37.0, "resets_at": "2026-12-06T18:00:00Z"},
                        "seven_day": null, "seven_day_opus": {"utilization": 99.0}}"#;
        let reading = Reading::parse(body).unwrap();
        assert_eq!(reading.five_hour.unwrap().utilization, 37.0);
        assert_eq!(
            reading.five_hour.unwrap().resets_at.unwrap().to_rfc3339(),
            "2026-12-06T18:00:00+00:00"
        );
        assert_eq!(reading.seven_day, None);
        assert_eq!(reading.fullest(), 37.0);
    }

    #[test]
    fn an_answer_of_another_shape_is_an_error_that_does_not_echo_it() {
        for body in [
            &b"<html>"[..],
            br#"{"five_hour": {"utilization": "high"}}"#,
            br#"{"five_hour": {"utilization": 250}}"#,
        ] {
            let error = Reading::parse(body).unwrap_err();
            assert!(
                !error.contains("high") && !error.contains("html"),
                "{error}"
            );
        }
    }
}

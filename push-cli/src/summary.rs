//! Counting outcomes, the progress bar, and the summary printed at the end of a run.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use push_proto::Feedback;

use crate::change::Applied;

/// Outcomes counted over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Devices delivered (including those with a new token).
    pub delivered: u64,
    /// Delivered devices that came back with a new canonical token.
    pub new_tokens: u64,
    /// Failed devices by error code, malformed input included.
    pub failed: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// Counts one feedback.
    pub fn feedback(&mut self, feedback: &Feedback) {
        match &feedback.error {
            Some(error) => self.fail(error.code()),
            None => {
                self.delivered += 1;
                self.new_tokens += u64::from(feedback.new_token.is_some());
            }
        }
    }

    /// Counts one failure.
    pub fn fail(&mut self, code: &'static str) {
        *self.failed.entry(code).or_default() += 1;
    }

    /// Failures with `code`.
    pub fn failed_with(&self, code: &str) -> u64 {
        self.failed.get(code).copied().unwrap_or(0)
    }

    /// Every device counted.
    pub fn total(&self) -> u64 {
        self.delivered + self.failed.values().sum::<u64>()
    }
}

/// Notifications per second.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The summary lines of a run.
pub fn render(tally: &Tally, elapsed: Duration, applied: Option<Applied>) -> String {
    let mut out = format!(
        "{} devices in {:.2} s ({:.0} notifications/s)\n  delivered        {}\n  new token        {}\n",
        tally.total(),
        elapsed.as_secs_f64(),
        rate(tally.total(), elapsed),
        tally.delivered,
        tally.new_tokens,
    );
    for (code, count) in &tally.failed {
        out.push_str(&format!("  {code:<16} {count}\n"));
    }
    if let Some(applied) = applied {
        out.push_str(&format!(
            "store: {} invalid tokens deleted, {} tokens replaced, {} duplicates removed\n",
            applied.deleted, applied.replaced, applied.merged
        ));
    }
    out
}

/// A progress bar on standard error when it is a terminal (and not `quiet`); hidden otherwise.
/// `total` is the number of devices when known.
pub fn progress(total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(total) => {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} devices  {per_sec}  eta {eta}")
            {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} devices  {per_sec}") {
                bar.set_style(style);
            }
            bar
        }
    }
}

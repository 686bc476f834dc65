//! Safety before deletion: deletions are held back until a provider has answered enough
//! devices to judge, a provider whose invalid share is far beyond normal gets no deletion at
//! all (and no more devices), and an explicit cap bounds the deletions of a run.
//!
//! A misconfiguration looks like a mass uninstall: the sandbox endpoint with a production
//! store answers `BadDeviceToken` for every device, a service account of another Firebase
//! project `SENDER_ID_MISMATCH`. The guard tells the two apart by the share only: real stores
//! lose a few percent of their devices between two broadcasts, never half.

use std::collections::BTreeMap;

use push_proto::{Feedback, Platform};

use crate::change::Change;

/// Answers a provider must have given before its deletions are released.
pub const DEFAULT_MIN_ANSWERS: u64 = 1000;

/// The default limit of the invalid share, in percent.
pub const DEFAULT_MAX_INVALID_PERCENT: f64 = 50.0;

/// `--max-delete`: the most deletions a run may apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    /// At most this many.
    Count(u64),
    /// At most this percentage of the devices the source holds.
    Percent(f64),
}

impl std::str::FromStr for MaxDelete {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a count (100) or a percentage (5%)");
        match text.strip_suffix('%') {
            Some(percent) => {
                let value: f64 = percent.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&value) {
                    return Err(bad());
                }
                Ok(MaxDelete::Percent(value))
            }
            None => text.trim().parse().map(MaxDelete::Count).map_err(|_| bad()),
        }
    }
}

impl MaxDelete {
    /// The cap as a count, given the number of devices in the source (`None` when unknown,
    /// which only a percentage needs).
    pub fn resolve(self, devices: Option<u64>) -> Result<u64, String> {
        match (self, devices) {
            (MaxDelete::Count(n), _) => Ok(n),
            (MaxDelete::Percent(p), Some(total)) => Ok((total as f64 * p / 100.0).floor() as u64),
            (MaxDelete::Percent(_), None) => {
                Err("--max-delete P% needs a source whose size is known (--db)".into())
            }
        }
    }
}

/// The guard's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Answers per provider before its deletions are released.
    pub min_answers: u64,
    /// The invalid share (percent) beyond which a provider is stopped.
    pub max_invalid_percent: f64,
    /// The most deletions of the run, if capped.
    pub max_delete: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_answers: DEFAULT_MIN_ANSWERS,
            max_invalid_percent: DEFAULT_MAX_INVALID_PERCENT,
            max_delete: None,
        }
    }
}

/// What one provider (one platform: a run uses one provider per platform) answered so far.
#[derive(Debug, Clone, Default)]
struct Provider {
    answered: u64,
    invalid: u64,
    /// Invalid answers by the provider's reason (`BadDeviceToken`, `SENDER_ID_MISMATCH`).
    reasons: BTreeMap<String, u64>,
    /// Deletions waiting for the judgement.
    held: Vec<Change>,
    stopped: bool,
}

/// Why a provider was stopped: the line printed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The platform whose provider was stopped.
    pub platform: Platform,
    /// One line: the share, the likely cause and what to check.
    pub line: String,
}

/// The guard of one run.
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    providers: BTreeMap<&'static str, Provider>,
    released_deletions: u64,
    /// Deletions refused by `--max-delete`.
    over_cap: u64,
    /// Deletions dropped because their provider was stopped.
    withheld: u64,
    stops: Vec<Stopped>,
}

impl Guard {
    /// A guard with `limits`.
    pub fn new(limits: Limits) -> Self {
        Guard {
            limits,
            providers: BTreeMap::new(),
            released_deletions: 0,
            over_cap: 0,
            withheld: 0,
            stops: Vec::new(),
        }
    }

    /// True once the provider of `platform` was stopped: its devices are no longer sent.
    pub fn is_stopped(&self, platform: Platform) -> bool {
        self.providers
            .get(platform.as_str())
            .is_some_and(|provider| provider.stopped)
    }

    /// Counts one feedback and offers the change it calls for; returns the changes that may
    /// be applied now (none while the provider is not judged yet).
    pub fn observe(&mut self, feedback: &Feedback, change: Option<Change>) -> Vec<Change> {
        let platform = feedback.device.platform;
        let provider = self.providers.entry(platform.as_str()).or_default();
        provider.answered += 1;
        if feedback
            .error
            .as_ref()
            .is_some_and(|error| error.is_invalid_device())
        {
            provider.invalid += 1;
            let reason = feedback.receipt.reason.clone().unwrap_or_default();
            *provider.reasons.entry(reason).or_default() += 1;
        }
        let mut out = Vec::new();
        match change {
            Some(change @ Change::Replace { .. }) => out.push(change),
            Some(change @ Change::Delete { .. }) => {
                if provider.stopped {
                    self.withheld += 1;
                } else {
                    provider.held.push(change);
                }
            }
            None => {}
        }
        self.judge(platform, false, &mut out);
        out
    }

    /// The end of the run: providers with fewer answers than the minimum are judged on what
    /// they answered; returns the deletions released.
    pub fn finish(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        let platforms: Vec<Platform> = Platform::ALL
            .into_iter()
            .filter(|p| self.providers.contains_key(p.as_str()))
            .collect();
        for platform in platforms {
            self.judge(platform, true, &mut out);
        }
        out
    }

    /// Judges the provider of `platform` (once it has enough answers, or at the end) and
    /// moves its releasable deletions to `out`.
    fn judge(&mut self, platform: Platform, end: bool, out: &mut Vec<Change>) {
        let limits = self.limits;
        let Some(provider) = self.providers.get_mut(platform.as_str()) else {
            return;
        };
        if provider.stopped || (!end && provider.answered < limits.min_answers) {
            return;
        }
        let share = 100.0 * provider.invalid as f64 / provider.answered.max(1) as f64;
        if share > limits.max_invalid_percent {
            provider.stopped = true;
            self.withheld += provider.held.len() as u64;
            provider.held.clear();
            let line = cause_line(platform, provider, share, limits.max_invalid_percent);
            self.stops.push(Stopped { platform, line });
            return;
        }
        for change in provider.held.drain(..) {
            match limits.max_delete {
                Some(cap) if self.released_deletions >= cap => self.over_cap += 1,
                _ => {
                    self.released_deletions += 1;
                    out.push(change);
                }
            }
        }
    }

    /// The providers stopped, with their lines.
    pub fn stops(&self) -> &[Stopped] {
        &self.stops
    }

    /// The `--max-delete` cap, as a count.
    pub fn cap(&self) -> Option<u64> {
        self.limits.max_delete
    }

    /// Deletions refused by `--max-delete`.
    pub fn over_cap(&self) -> u64 {
        self.over_cap
    }

    /// Deletions dropped because their provider was stopped.
    pub fn withheld(&self) -> u64 {
        self.withheld
    }
}

/// The line naming the likely cause of a provider's invalid share.
fn cause_line(platform: Platform, provider: &Provider, share: f64, limit: f64) -> String {
    let (reason, _) = provider
        .reasons
        .iter()
        .max_by_key(|(_, count)| **count)
        .map_or(("", 0), |(reason, count)| (reason.as_str(), *count));
    let service = match platform {
        Platform::Ios => "APNs",
        Platform::Android => "the Android provider",
        Platform::Web => "the Web Push services",
    };
    let cause = match reason {
        "BadDeviceToken" => {
            "the tokens likely belong to the other APNs environment (sandbox vs production): check --apns-url"
        }
        "SENDER_ID_MISMATCH" => {
            "the tokens likely belong to another Firebase project than the service account's: check --fcm-service-account and --fcm-project"
        }
        "DeviceTokenNotForTopic" | "TopicDisallowed" => {
            "the tokens likely belong to another app: check --apns-topic"
        }
        _ => match platform {
            Platform::Ios => {
                "likely a wrong endpoint or app: check --apns-url (sandbox vs production) and --apns-topic"
            }
            Platform::Android => {
                "likely another project or sender: check --fcm-service-account, --fcm-project or the GCM key"
            }
            Platform::Web => {
                "the subscriptions likely came from a test push service, or the browsers unsubscribed long ago: check where the subscriptions were collected"
            }
        },
    };
    let answered = if reason.is_empty() {
        "invalid_device".to_owned()
    } else {
        reason.to_owned()
    };
    format!(
        "{} stopped, no token deleted: {service} answered {answered} for {} of {} {} devices ({share:.0}%, over --max-invalid {limit}%): {cause}",
        platform_name(platform),
        provider.invalid,
        provider.answered,
        platform_name(platform),
    )
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Ios => "iOS",
        Platform::Android => "Android",
        Platform::Web => "Web",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use push_proto::{Device, DeviceError, Receipt};

    fn invalid(platform: Platform, n: u64, reason: &str) -> Feedback {
        let mut feedback = Feedback::failed(
            Device::new(platform, format!("t{n}")),
            DeviceError::InvalidDevice,
        );
        feedback.receipt = Receipt {
            reason: Some(reason.into()),
            ..Receipt::default()
        };
        feedback
    }

    fn delete(feedback: &Feedback) -> Option<Change> {
        Some(Change::Delete {
            platform: feedback.device.platform,
            token: feedback.device.token.clone(),
            unregistered_at: None,
            reason: feedback.receipt.reason.clone(),
        })
    }

    fn limits(min_answers: u64, max_delete: Option<u64>) -> Limits {
        Limits {
            min_answers,
            max_invalid_percent: 50.0,
            max_delete,
        }
    }

    #[test]
    fn every_device_invalid_stops_the_provider_before_any_deletion() {
        let mut guard = Guard::new(limits(100, None));
        let mut released = 0;
        for n in 0..1000 {
            let feedback = invalid(Platform::Ios, n, "BadDeviceToken");
            released += guard.observe(&feedback, delete(&feedback)).len();
        }
        released += guard.finish().len();
        assert_eq!(released, 0);
        assert!(guard.is_stopped(Platform::Ios));
        assert!(!guard.is_stopped(Platform::Android));
        assert_eq!(guard.withheld(), 1000);
        let line = &guard.stops()[0].line;
        assert!(line.contains("sandbox vs production"), "{line}");
        assert!(line.contains("100 of 100 iOS devices"), "{line}");
    }

    #[test]
    fn a_normal_share_releases_the_held_deletions_after_the_minimum() {
        let mut guard = Guard::new(limits(10, None));
        let mut released = Vec::new();
        for n in 0..20 {
            let feedback = if n % 5 == 0 {
                invalid(Platform::Android, n, "UNREGISTERED")
            } else {
                Feedback::delivered(Device::android(format!("ok{n}")))
            };
            let change = feedback
                .error
                .is_some()
                .then(|| delete(&feedback))
                .flatten();
            let out = guard.observe(&feedback, change);
            if n < 9 {
                assert!(out.is_empty(), "held until 10 answers");
            }
            released.extend(out);
        }
        assert_eq!(released.len(), 4);
        assert!(guard.finish().is_empty());
        assert!(guard.stops().is_empty());
    }

    #[test]
    fn small_runs_are_judged_at_the_end() {
        let mut guard = Guard::new(limits(1000, None));
        let bad = invalid(Platform::Android, 1, "SENDER_ID_MISMATCH");
        assert!(guard.observe(&bad, delete(&bad)).is_empty());
        assert!(guard.finish().is_empty());
        assert!(guard.stops()[0].line.contains("another Firebase project"));
        let mut guard = Guard::new(limits(1000, None));
        let ok = Feedback::delivered(Device::android("ok"));
        assert!(guard.observe(&bad, delete(&bad)).is_empty());
        assert!(guard.observe(&ok, None).is_empty());
        assert_eq!(guard.finish().len(), 1, "50% is not over 50%");
    }

    #[test]
    fn max_delete_caps_the_released_deletions() {
        let mut guard = Guard::new(limits(1, Some(2)));
        let mut released = 0;
        for n in 0..10 {
            let ok = Feedback::delivered(Device::ios(format!("{n:064x}")));
            released += guard.observe(&ok, None).len();
            let bad = invalid(Platform::Ios, n, "Unregistered");
            released += guard.observe(&bad, delete(&bad)).len();
        }
        assert_eq!(released, 2);
        assert_eq!(guard.over_cap(), 8);
    }

    #[test]
    fn max_delete_parses_counts_and_percentages() {
        assert_eq!("100".parse(), Ok(MaxDelete::Count(100)));
        assert_eq!("5%".parse(), Ok(MaxDelete::Percent(5.0)));
        assert!("150%".parse::<MaxDelete>().is_err());
        assert!("x".parse::<MaxDelete>().is_err());
        assert_eq!(MaxDelete::Percent(5.0).resolve(Some(1000)), Ok(50));
        assert!(MaxDelete::Percent(5.0).resolve(None).is_err());
    }
}

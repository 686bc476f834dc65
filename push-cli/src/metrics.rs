//! Prometheus metrics of a sender: outcomes counted from the feedback stream, the time each
//! notification took, and the client's own counters read at scrape time.
//!
//! Built to be shared: `push send` feeds it from its feedback loop; a long-running sender
//! can do the same and serve it with [`crate::metrics_server`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use push_smol::push_proto::apns::GatewayStats;
use push_smol::push_proto::engine::Stats as EngineStats;
use push_smol::{ClientStats, Feedback};

use crate::change::ProviderNames;

/// The `Content-Type` of [`Metrics::render`]: Prometheus text exposition 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The label value for "no provider" (malformed input) and "no reason".
const NONE: &str = "none";
/// The label value of a reason the provider does not document.
const OTHER: &str = "other";

/// APNs' documented reasons (`push_proto::apns::http2::Reason::DOCUMENTED`).
const APNS_REASONS: [&str; 32] = [
    "BadCollapseId",
    "BadDeviceToken",
    "BadExpirationDate",
    "BadMessageId",
    "BadPriority",
    "BadTopic",
    "DeviceTokenNotForTopic",
    "DuplicateHeaders",
    "IdleTimeout",
    "InvalidPushType",
    "MissingDeviceToken",
    "MissingTopic",
    "PayloadEmpty",
    "TopicDisallowed",
    "BadCertificate",
    "BadCertificateEnvironment",
    "ExpiredProviderToken",
    "Forbidden",
    "InvalidProviderToken",
    "MissingProviderToken",
    "UnrelatedKeyIdInToken",
    "BadEnvironmentKeyIdInToken",
    "BadPath",
    "MethodNotAllowed",
    "Unregistered",
    "ExpiredToken",
    "PayloadTooLarge",
    "TooManyProviderTokenUpdates",
    "TooManyRequests",
    "InternalServerError",
    "ServiceUnavailable",
    "Shutdown",
];

/// FCM HTTP v1's documented error codes (`push_proto::fcm::ErrorCode::DOCUMENTED`).
const FCM_REASONS: [&str; 8] = [
    "UNSPECIFIED_ERROR",
    "INVALID_ARGUMENT",
    "UNREGISTERED",
    "SENDER_ID_MISMATCH",
    "QUOTA_EXCEEDED",
    "UNAVAILABLE",
    "INTERNAL",
    "THIRD_PARTY_AUTH_ERROR",
];

/// GCM's documented per-device error codes.
const GCM_REASONS: [&str; 14] = [
    "MissingRegistration",
    "InvalidRegistration",
    "NotRegistered",
    "InvalidPackageName",
    "MismatchSenderId",
    "InvalidParameters",
    "MessageTooBig",
    "InvalidDataKey",
    "InvalidTtl",
    "Unavailable",
    "InternalServerError",
    "DeviceMessageRateExceeded",
    "TopicsMessageRateExceeded",
    "InvalidApnsCredential",
];

/// Upper bounds of the duration histogram's buckets, in seconds (5 ms to 60 s).
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The app label of a worker's series (`None`: no `app` label, as `push send` has).
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct AppLabel(Option<String>);

impl EncodeLabelSet for AppLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        match &self.0 {
            Some(app) => ("app", app.as_str()).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

/// The labels of `push_notifications_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct OutcomeLabels {
    app: AppLabel,
    provider: &'static str,
    outcome: &'static str,
    reason: &'static str,
}

impl EncodeLabelSet for OutcomeLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        self.app.encode(encoder)?;
        ("provider", self.provider).encode(encoder.encode_label())?;
        ("outcome", self.outcome).encode(encoder.encode_label())?;
        ("reason", self.reason).encode(encoder.encode_label())
    }
}

/// The app (when there is one) and provider labels of a client's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct AppProvider {
    app: AppLabel,
    provider: &'static str,
}

impl EncodeLabelSet for AppProvider {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        self.app.encode(encoder)?;
        ("provider", self.provider).encode(encoder.encode_label())
    }
}

/// Where a client's counters come from at scrape time.
type StatsSource = Box<dyn Fn() -> ClientStats + Send + Sync>;

/// The clients watched, by app label.
type Sources = Arc<Mutex<BTreeMap<AppLabel, StatsSource>>>;

/// The metrics of one sender.
pub struct Metrics {
    registry: Registry,
    notifications: Family<OutcomeLabels, Counter>,
    new_tokens: Family<AppProvider, Counter>,
    duration: Family<AppProvider, Histogram>,
    client: Sources,
    worker: Option<WorkerSeries>,
}

/// The series of `push worker`'s jobs.
#[derive(Debug)]
pub struct WorkerSeries {
    jobs: Family<JobOutcome, Counter>,
    claimed: Counter,
    in_flight: Gauge,
}

/// The label of `push_worker_jobs_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobOutcome {
    outcome: &'static str,
}

impl WorkerSeries {
    /// A job ended with `outcome`: `sent` (results recorded), `refused` (its app cannot be
    /// used: refusals recorded), `skipped` (no known campaign), `failed` (left pending).
    pub fn job(&self, outcome: &'static str) {
        self.jobs.get_or_create(&JobOutcome { outcome }).inc();
    }

    /// A job pending at another worker was taken over.
    pub fn claimed(&self) {
        self.claimed.inc();
    }

    /// A job starts (`1`) or ends (`-1`).
    pub fn in_flight(&self, change: i64) {
        self.in_flight.inc_by(change);
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let notifications = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "push_notifications",
            "Notifications by provider, outcome (delivered or the error code) and the provider's reason (documented ones, else other; none without one)",
            notifications.clone(),
        );
        let new_tokens = Family::<AppProvider, Counter>::default();
        registry.register(
            "push_new_tokens",
            "Delivered notifications whose token came back replaced by a canonical one",
            new_tokens.clone(),
        );
        let duration = Family::<AppProvider, Histogram>::new_with_constructor(
            (|| Histogram::new(DURATION_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "push_notification_duration_seconds",
            "From handing a device to the client to its feedback: queueing, connection, retries and the provider's answer",
            duration.clone(),
        );
        let client = Sources::default();
        registry.register_collector(Box::new(ClientCollector {
            source: client.clone(),
        }));
        Metrics {
            registry,
            notifications,
            new_tokens,
            duration,
            client,
            worker: None,
        }
    }
}

impl Metrics {
    /// The metrics of `push worker`: those of a sender, and its jobs'.
    pub fn for_worker() -> Metrics {
        let mut metrics = Metrics::default();
        let series = WorkerSeries {
            jobs: Family::default(),
            claimed: Counter::default(),
            in_flight: Gauge::default(),
        };
        metrics.registry.register(
            "push_worker_jobs",
            "Jobs this worker ended, by outcome: sent, refused (the campaign's app unusable), skipped (no known campaign), failed (left pending)",
            series.jobs.clone(),
        );
        metrics.registry.register(
            "push_worker_claimed_jobs",
            "Jobs taken over from another worker after --claim-idle",
            series.claimed.clone(),
        );
        metrics.registry.register(
            "push_worker_jobs_in_flight",
            "Jobs being sent now",
            series.in_flight.clone(),
        );
        metrics.worker = Some(series);
        metrics
    }

    /// The job series, for a worker's metrics.
    pub fn worker(&self) -> Option<&WorkerSeries> {
        self.worker.as_ref()
    }

    /// Reads the client's counters from `stats` at each scrape (replacing any source set
    /// before), in series without an `app` label.
    pub fn watch_client(&self, stats: impl Fn() -> ClientStats + Send + Sync + 'static) {
        self.watch(AppLabel(None), Box::new(stats));
    }

    /// Reads the counters of `app`'s client from `stats` at each scrape (replacing the
    /// source of `app` set before), in series labelled `app`.
    pub fn watch_app_client(
        &self,
        app: &str,
        stats: impl Fn() -> ClientStats + Send + Sync + 'static,
    ) {
        self.watch(AppLabel(Some(app.to_owned())), Box::new(stats));
    }

    fn watch(&self, app: AppLabel, stats: StatsSource) {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(app, stats);
    }

    /// Counts one feedback of `provider`, which took `seconds` when it was timed, in
    /// series labelled `app` when given.
    pub fn feedback(
        &self,
        app: Option<&str>,
        provider: &'static str,
        feedback: &Feedback,
        seconds: Option<f64>,
    ) {
        let (provider, outcome) = match &feedback.error {
            Some(error) if error.code() == "no_provider" => (NONE, error.code()),
            Some(error) => (provider, error.code()),
            None => (provider, "delivered"),
        };
        let reason = known_reason(provider, feedback.receipt.reason.as_deref());
        let app = AppLabel(app.map(str::to_owned));
        self.notifications
            .get_or_create(&OutcomeLabels {
                app: app.clone(),
                provider,
                outcome,
                reason,
            })
            .inc();
        if feedback.error.is_none() && feedback.new_token.is_some() {
            self.new_tokens
                .get_or_create(&AppProvider {
                    app: app.clone(),
                    provider,
                })
                .inc();
        }
        if let Some(seconds) = seconds {
            self.duration
                .get_or_create(&AppProvider {
                    app: app.clone(),
                    provider,
                })
                .observe(seconds);
        }
    }

    /// Counts one input line that was never sent (`unknown_platform`,
    /// `invalid_token_format`).
    pub fn malformed(&self, code: &'static str) {
        self.unsent(None, code);
    }

    /// Counts one device never sent with result `code`, in series labelled `app` when
    /// given (a worker's campaign whose app it cannot use).
    pub fn unsent(&self, app: Option<&str>, code: &'static str) {
        self.notifications
            .get_or_create(&OutcomeLabels {
                app: AppLabel(app.map(str::to_owned)),
                provider: NONE,
                outcome: code,
                reason: NONE,
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric now.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `reason` when `provider` documents it, `other` when it does not, `none` without one.
fn known_reason(provider: &str, reason: Option<&str>) -> &'static str {
    let Some(reason) = reason.filter(|r| !r.is_empty()) else {
        return NONE;
    };
    let known: &[&'static str] = match provider {
        "apns-http2" => &APNS_REASONS,
        "fcm" => &FCM_REASONS,
        "gcm" => &GCM_REASONS,
        _ => &[],
    };
    known
        .iter()
        .copied()
        .find(|k| *k == reason)
        .unwrap_or(OTHER)
}

/// Times notifications from hand-over to feedback, for one run on one thread.
#[derive(Debug)]
pub struct Timer {
    metrics: Arc<Metrics>,
    providers: ProviderNames,
    /// The `app` label of its series, if any.
    app: Option<String>,
    /// When each device in flight was handed over (a token sent twice at once keeps the
    /// first time: the second feedback goes untimed).
    sent: HashMap<String, Instant>,
}

impl Timer {
    /// A timer feeding `metrics`, naming providers as `providers` does.
    pub fn new(metrics: Arc<Metrics>, providers: ProviderNames) -> Timer {
        Timer {
            metrics,
            providers,
            app: None,
            sent: HashMap::new(),
        }
    }

    /// A timer whose series carry the label `app`.
    pub fn for_app(metrics: Arc<Metrics>, providers: ProviderNames, app: &str) -> Timer {
        Timer {
            app: Some(app.to_owned()),
            ..Timer::new(metrics, providers)
        }
    }

    /// `token` was handed to the client now.
    pub fn sent(&mut self, token: String) {
        self.sent.entry(token).or_insert_with(Instant::now);
    }

    /// Counts `feedback`, timed when its device was handed over through [`Timer::sent`].
    pub fn feedback(&mut self, feedback: &Feedback) {
        let seconds = self
            .sent
            .remove(&feedback.device.token)
            .map(|at| at.elapsed().as_secs_f64());
        let provider = self.providers.of(feedback.device.platform);
        self.metrics
            .feedback(self.app.as_deref(), provider, feedback, seconds);
    }

    /// Counts an input line that was never sent.
    pub fn malformed(&self, code: &'static str) {
        self.metrics.malformed(code);
    }
}

/// The clients' counters, read at each scrape.
struct ClientCollector {
    source: Sources,
}

impl fmt::Debug for ClientCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCollector").finish_non_exhaustive()
    }
}

/// One metric of the clients with its value per app and provider.
struct PerProvider {
    name: &'static str,
    help: &'static str,
    values: Vec<(AppProvider, u64)>,
}

/// The values of one metric of one client, by provider.
fn client_values(stats: &ClientStats) -> [Vec<(&'static str, u64)>; 10] {
    let engines: Vec<(&'static str, EngineStats)> = [
        ("apns-http2", stats.apns_http2),
        ("gcm", stats.gcm),
        ("fcm", stats.fcm),
        ("webpush", stats.web_push),
    ]
    .into_iter()
    .filter_map(|(provider, s)| Some((provider, s?)))
    .collect();
    let engine = |get: fn(&EngineStats) -> u64| -> Vec<(&'static str, u64)> {
        engines
            .iter()
            .map(|(provider, s)| (*provider, get(s)))
            .collect()
    };
    let gateway = |get: fn(&GatewayStats) -> u64| -> Vec<(&'static str, u64)> {
        stats.apns.iter().map(|s| ("apns", get(s))).collect()
    };
    [
        engine(|s| s.requests),
        engine(|s| s.retries),
        engine(|s| s.refused),
        engine(|s| s.transport_failures),
        engine(|s| s.goaways),
        [engine(|s| s.dials), gateway(|s| s.connections)].concat(),
        engine(|s| s.token_refreshes),
        engine(|s| s.token_failures),
        stats
            .apns
            .iter()
            .map(|_| ("apns", stats.late_verdicts))
            .collect(),
        engine(|s| s.in_flight as u64),
    ]
}

/// The name and help of the counters of [`client_values`], in its order.
const CLIENT_COUNTERS: [(&str, &str); 9] = [
    (
        "push_requests",
        "Requests sent to the provider (first sends, retries and resends).",
    ),
    ("push_retries", "Retries scheduled after a transient error."),
    (
        "push_requests_refused",
        "Requests the server did not process (REFUSED_STREAM, above a GOAWAY), sent again.",
    ),
    (
        "push_transport_failures",
        "Requests that ended without a response.",
    ),
    ("push_goaways", "GOAWAY frames received."),
    (
        "push_connections_dialed",
        "Connections dialed (successful or not).",
    ),
    (
        "push_token_refreshes",
        "New credentials in use (APNs provider tokens signed, FCM access tokens obtained).",
    ),
    ("push_token_failures", "Credential requests that failed."),
    (
        "push_late_verdicts",
        "Binary gateway errors that came after the grace period, naming a notification already reported delivered.",
    ),
];

impl Collector for ClientCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let clients: Vec<(AppLabel, ClientStats)> = {
            let sources = self.source.lock().unwrap_or_else(PoisonError::into_inner);
            sources
                .iter()
                .map(|(app, source)| (app.clone(), source()))
                .collect()
        };
        if clients.is_empty() {
            return Ok(());
        }
        let mut metrics: Vec<PerProvider> = CLIENT_COUNTERS
            .iter()
            .chain([&("push_in_flight", "Requests in flight now.")])
            .map(|&(name, help)| PerProvider {
                name,
                help,
                values: Vec::new(),
            })
            .collect();
        for (app, stats) in &clients {
            for (metric, values) in metrics.iter_mut().zip(client_values(stats)) {
                metric
                    .values
                    .extend(values.into_iter().map(|(provider, value)| {
                        (
                            AppProvider {
                                app: app.clone(),
                                provider,
                            },
                            value,
                        )
                    }));
            }
        }
        let in_flight = metrics.pop().map(|m| m.values).unwrap_or_default();
        for metric in metrics.iter().filter(|m| !m.values.is_empty()) {
            let mut family =
                encoder.encode_descriptor(metric.name, metric.help, None, MetricType::Counter)?;
            for (labels, value) in &metric.values {
                ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
            }
        }
        if !in_flight.is_empty() {
            let mut family = encoder.encode_descriptor(
                "push_in_flight",
                "Requests in flight now.",
                None,
                MetricType::Gauge,
            )?;
            for (labels, value) in &in_flight {
                ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX))
                    .encode(family.encode_family(labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "push_feedback_waiting",
            "Feedbacks waiting for a slow reader now.",
            None,
            MetricType::Gauge,
        )?;
        for (app, stats) in &clients {
            ConstGauge::new(i64::try_from(stats.feedback_waiting).unwrap_or(i64::MAX))
                .encode(family.encode_family(app)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use push_smol::push_proto::apns::http2::Reason;
    use push_smol::push_proto::engine::Stats;
    use push_smol::push_proto::fcm::ErrorCode;
    use push_smol::{Device, DeviceError, Platform};

    use super::*;

    const PROVIDERS: ProviderNames = ProviderNames {
        ios: "apns-http2",
        android: "fcm",
    };

    fn device(platform: Platform, token: &str) -> Device {
        Device {
            platform,
            token: token.into(),
        }
    }

    fn failed(platform: Platform, token: &str, reason: Option<&str>) -> Feedback {
        let mut feedback = Feedback::failed(device(platform, token), DeviceError::InvalidDevice);
        feedback.receipt.reason = reason.map(str::to_owned);
        feedback
    }

    /// The sample lines of `text` (comments left out).
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn the_reason_lists_are_the_documented_ones() {
        let apns: Vec<&str> = Reason::DOCUMENTED.iter().map(Reason::as_str).collect();
        assert_eq!(apns, APNS_REASONS);
        let fcm: Vec<&str> = ErrorCode::DOCUMENTED
            .iter()
            .map(ErrorCode::as_str)
            .collect();
        assert_eq!(fcm, FCM_REASONS);
    }

    #[test]
    fn reasons_are_bounded_to_the_documented_ones() {
        assert_eq!(
            known_reason("apns-http2", Some("BadDeviceToken")),
            "BadDeviceToken"
        );
        assert_eq!(known_reason("apns-http2", Some("UNREGISTERED")), "other");
        assert_eq!(known_reason("fcm", Some("UNREGISTERED")), "UNREGISTERED");
        assert_eq!(known_reason("gcm", Some("NotRegistered")), "NotRegistered");
        assert_eq!(known_reason("gcm", Some("a token 1234")), "other");
        assert_eq!(known_reason("apns", Some("anything")), "other");
        assert_eq!(known_reason("fcm", Some("")), "none");
        assert_eq!(known_reason("fcm", None), "none");
    }

    #[test]
    fn outcomes_are_counted_by_provider_outcome_and_reason() {
        let metrics = Arc::new(Metrics::default());
        let mut timer = Timer::new(metrics.clone(), PROVIDERS);
        for token in ["a", "b", "c"] {
            timer.sent(token.into());
        }
        timer.feedback(&Feedback::delivered(device(Platform::Android, "a")));
        timer.feedback(&Feedback::replaced(
            device(Platform::Android, "b"),
            "b2".into(),
        ));
        timer.feedback(&failed(Platform::Android, "c", Some("UNREGISTERED")));
        timer.feedback(&failed(Platform::Ios, "d", Some("BadDeviceToken")));
        timer.feedback(&failed(Platform::Ios, "e", Some("Whatever 123")));
        timer.feedback(&Feedback::failed(
            device(Platform::Ios, "f"),
            DeviceError::NoProvider(Platform::Ios),
        ));
        timer.malformed("invalid_token_format");
        let text = metrics.render().unwrap();
        let lines = samples(&text);
        for line in [
            r#"push_notifications_total{provider="fcm",outcome="delivered",reason="none"} 2"#,
            r#"push_notifications_total{provider="fcm",outcome="invalid_device",reason="UNREGISTERED"} 1"#,
            r#"push_notifications_total{provider="apns-http2",outcome="invalid_device",reason="BadDeviceToken"} 1"#,
            r#"push_notifications_total{provider="apns-http2",outcome="invalid_device",reason="other"} 1"#,
            r#"push_notifications_total{provider="none",outcome="no_provider",reason="none"} 1"#,
            r#"push_notifications_total{provider="none",outcome="invalid_token_format",reason="none"} 1"#,
            r#"push_new_tokens_total{provider="fcm"} 1"#,
            r#"push_notification_duration_seconds_count{provider="fcm"} 3"#,
            r#"push_notification_duration_seconds_bucket{provider="fcm",le="+Inf"} 3"#,
        ] {
            assert!(lines.contains(&line), "{line} not in\n{text}");
        }
        // Only the timed devices are in the histogram; the client is not watched yet.
        assert!(
            !text.contains(r#"push_notification_duration_seconds_count{provider="apns-http2"}"#)
        );
        assert!(!text.contains("push_requests_total"), "{text}");
        assert!(
            text.contains("# TYPE push_notifications_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE push_notification_duration_seconds histogram\n"),
            "{text}"
        );
    }

    #[test]
    fn the_client_counters_are_read_at_each_scrape() {
        let metrics = Metrics::default();
        let stats = Arc::new(Mutex::new(ClientStats::default()));
        let source = stats.clone();
        metrics.watch_client(move || *source.lock().unwrap());
        *stats.lock().unwrap() = ClientStats {
            apns_connections: 2,
            late_verdicts: 1,
            feedback_waiting: 7,
            apns: Some(GatewayStats {
                connections: 2,
                ..GatewayStats::default()
            }),
            fcm: Some(Stats {
                requests: 10,
                retries: 3,
                refused: 1,
                goaways: 2,
                dials: 4,
                token_refreshes: 1,
                in_flight: 5,
                ..Stats::default()
            }),
            apns_http2: Some(Stats {
                token_refreshes: 2,
                ..Stats::default()
            }),
            web_push: Some(Stats {
                requests: 6,
                ..Stats::default()
            }),
            ..ClientStats::default()
        };
        let text = metrics.render().unwrap();
        let lines = samples(&text);
        for line in [
            r#"push_requests_total{provider="fcm"} 10"#,
            r#"push_requests_total{provider="apns-http2"} 0"#,
            r#"push_requests_total{provider="webpush"} 6"#,
            r#"push_retries_total{provider="fcm"} 3"#,
            r#"push_requests_refused_total{provider="fcm"} 1"#,
            r#"push_goaways_total{provider="fcm"} 2"#,
            r#"push_connections_dialed_total{provider="fcm"} 4"#,
            r#"push_connections_dialed_total{provider="apns"} 2"#,
            r#"push_token_refreshes_total{provider="fcm"} 1"#,
            r#"push_token_refreshes_total{provider="apns-http2"} 2"#,
            r#"push_late_verdicts_total{provider="apns"} 1"#,
            r#"push_in_flight{provider="fcm"} 5"#,
            "push_feedback_waiting 7",
        ] {
            assert!(lines.contains(&line), "{line} not in\n{text}");
        }
        assert!(text.contains("# TYPE push_in_flight gauge\n"), "{text}");
        assert!(
            text.contains("# TYPE push_goaways_total counter\n"),
            "{text}"
        );
        // GCM is not configured: no series of its own.
        assert!(!text.contains(r#"provider="gcm""#), "{text}");
        if let Some(fcm) = &mut stats.lock().unwrap().fcm {
            fcm.requests = 11;
        }
        let text = metrics.render().unwrap();
        assert!(samples(&text).contains(&r#"push_requests_total{provider="fcm"} 11"#));
    }

    #[test]
    fn a_workers_series_carry_the_app_and_its_jobs() {
        let metrics = Arc::new(Metrics::for_worker());
        let mut shop = Timer::for_app(metrics.clone(), PROVIDERS, "shop");
        let mut default = Timer::for_app(metrics.clone(), PROVIDERS, "default");
        shop.feedback(&Feedback::delivered(device(Platform::Android, "a")));
        shop.feedback(&failed(Platform::Ios, "b", Some("BadDeviceToken")));
        default.feedback(&Feedback::delivered(device(Platform::Android, "c")));
        metrics.unsent(Some("blog"), "unknown_app");
        let client = |requests: u64, waiting: u64| ClientStats {
            feedback_waiting: waiting,
            fcm: Some(Stats {
                requests,
                ..Stats::default()
            }),
            ..ClientStats::default()
        };
        metrics.watch_app_client("shop", move || client(3, 1));
        metrics.watch_app_client("default", move || client(5, 0));
        // A reloaded app's new client replaces the old one's series.
        metrics.watch_app_client("shop", move || client(4, 2));
        let series = metrics.worker().unwrap();
        series.job("sent");
        series.job("sent");
        series.job("refused");
        series.claimed();
        series.in_flight(1);
        series.in_flight(1);
        series.in_flight(-1);
        let text = metrics.render().unwrap();
        let lines = samples(&text);
        for line in [
            r#"push_notifications_total{app="shop",provider="fcm",outcome="delivered",reason="none"} 1"#,
            r#"push_notifications_total{app="shop",provider="apns-http2",outcome="invalid_device",reason="BadDeviceToken"} 1"#,
            r#"push_notifications_total{app="default",provider="fcm",outcome="delivered",reason="none"} 1"#,
            r#"push_notifications_total{app="blog",provider="none",outcome="unknown_app",reason="none"} 1"#,
            r#"push_requests_total{app="default",provider="fcm"} 5"#,
            r#"push_requests_total{app="shop",provider="fcm"} 4"#,
            r#"push_in_flight{app="shop",provider="fcm"} 0"#,
            r#"push_feedback_waiting{app="shop"} 2"#,
            r#"push_feedback_waiting{app="default"} 0"#,
            r#"push_worker_jobs_total{outcome="sent"} 2"#,
            r#"push_worker_jobs_total{outcome="refused"} 1"#,
            "push_worker_claimed_jobs_total 1",
            "push_worker_jobs_in_flight 1",
        ] {
            assert!(lines.contains(&line), "{line} not in\n{text}");
        }
        assert_eq!(
            text.matches("# TYPE push_requests_total counter").count(),
            1,
            "{text}"
        );
        assert_eq!(text.matches("push_requests_total{").count(), 2, "{text}");
        assert!(
            text.contains("# TYPE push_worker_jobs_in_flight gauge\n"),
            "{text}"
        );
    }

    #[test]
    fn a_sender_has_no_app_label_and_no_job_series() {
        let metrics = Metrics::default();
        metrics.watch_client(ClientStats::default);
        metrics.malformed("unknown_platform");
        let text = metrics.render().unwrap();
        assert!(!text.contains("app="), "{text}");
        assert!(!text.contains("push_worker"), "{text}");
        assert!(metrics.worker().is_none());
        assert!(
            samples(&text).contains(&"push_feedback_waiting 0"),
            "{text}"
        );
    }
}

//! The demo's Android side: the mock FCM HTTP v1 server (by default) or the legacy GCM mock,
//! and the client settings that reach it.

use std::collections::HashMap;
use std::time::Duration;

use push_mock::{Certificates, GcmOptions, MockFcm, MockGcm};
use push_smol::{ClientBuilder, GcmConfig, HttpConfig};

use super::fleet::{Expected, Protocol, Script};
use crate::loopback::{FCM_PROJECT, fcm_config, fcm_options, mock_tls, start_fcm};

/// The API key of the demo's GCM mock.
const GCM_KEY: &str = "demo-key";

/// The running Android mock.
#[derive(Debug)]
pub enum AndroidMock {
    /// FCM HTTP v1 and its OAuth2 token endpoint.
    Fcm(MockFcm),
    /// The legacy GCM HTTP endpoint; 2 % of its requests are answered 503.
    Gcm(MockGcm),
}

impl AndroidMock {
    /// Starts the mock of `protocol` with the plan's `scripts`.
    pub fn start(
        protocol: Protocol,
        scripts: Vec<(String, Script)>,
        certs: &Certificates,
    ) -> Result<AndroidMock, String> {
        match protocol {
            Protocol::Fcm => {
                let mut options = fcm_options()?.count_only(true);
                options.retry_after_secs = 0;
                for (token, script) in scripts {
                    if let Script::Fcm(script) = script {
                        options = options.script(token, script);
                    }
                }
                Ok(AndroidMock::Fcm(start_fcm(options, certs)?))
            }
            Protocol::GcmLegacy => {
                let scripts: HashMap<_, _> = scripts
                    .into_iter()
                    .filter_map(|(token, script)| match script {
                        Script::Gcm(script) => Some((token, script)),
                        Script::Fcm(_) => None,
                    })
                    .collect();
                let gcm = MockGcm::start(GcmOptions {
                    api_key: GCM_KEY.into(),
                    tls: Some(certs.clone()),
                    scripts,
                    unavailable_rate: 0.02,
                    retry_after_secs: 0,
                    seed: 7,
                    count_only: true,
                    ..GcmOptions::default()
                })
                .map_err(|e| format!("cannot start the mock GCM: {e}"))?;
                Ok(AndroidMock::Gcm(gcm))
            }
        }
    }

    /// `builder` with the provider that reaches this mock.
    pub fn configure(
        &self,
        builder: ClientBuilder,
        certs: &Certificates,
    ) -> Result<ClientBuilder, String> {
        let (initial, max) = (Duration::from_millis(10), Duration::from_millis(200));
        Ok(match self {
            AndroidMock::Fcm(fcm) => builder.fcm(
                fcm_config(fcm, certs)?
                    .backoff(initial, max)
                    .max_attempts(10),
            ),
            AndroidMock::Gcm(gcm) => builder.gcm(
                GcmConfig::new(GCM_KEY)
                    .endpoint(&gcm.endpoint())
                    .map_err(|e| e.to_string())?
                    .tls(mock_tls(certs, false)?)
                    .backoff(initial, max)
                    .max_attempts(10),
            ),
        })
    }

    /// The protocol, for the summary.
    pub fn protocol(&self) -> &'static str {
        match self {
            AndroidMock::Fcm(_) => "FCM HTTP v1 (service account)",
            AndroidMock::Gcm(_) => "legacy GCM HTTP (API key)",
        }
    }

    /// The mock and what it is scripted to answer.
    pub fn describe(&self) -> String {
        match self {
            AndroidMock::Fcm(fcm) => format!(
                "mock FCM {} (project {}; UNREGISTERED, SENDER_ID_MISMATCH, one 429 QUOTA_EXCEEDED or 503 UNAVAILABLE before delivery)",
                fcm.url(),
                FCM_PROJECT
            ),
            AndroidMock::Gcm(gcm) => format!(
                "mock GCM {} (NotRegistered, InvalidRegistration, canonical ids, 2 % of requests answered 503)",
                gcm.endpoint()
            ),
        }
    }

    /// What the mock saw, for the summary.
    pub fn stats(&self) -> String {
        match self {
            AndroidMock::Fcm(fcm) => format!(
                "FCM: {} requests on {} connection(s), {} answered 429 and {} answered 503 then retried, {} OAuth2 access token(s) issued",
                fcm.total_responses(),
                fcm.connections(),
                answered(fcm, 429),
                answered(fcm, 503),
                fcm.access_tokens_issued()
            ),
            AndroidMock::Gcm(gcm) => format!(
                "GCM: {} requests, {} answered 503 and retried",
                gcm.requests(),
                gcm.statuses().iter().filter(|s| **s == 503).count()
            ),
        }
    }

    /// Checks that the FCM mock answered exactly the planned 429s and 503s, once each.
    pub fn check(&self, expected: &Expected) -> Result<(), String> {
        let AndroidMock::Fcm(fcm) = self else {
            return Ok(());
        };
        let (quota, unavailable) = (answered(fcm, 429), answered(fcm, 503));
        if quota != expected.quota || unavailable != expected.unavailable {
            return Err(format!(
                "FCM answered {quota} 429s and {unavailable} 503s, planned {} and {}",
                expected.quota, expected.unavailable
            ));
        }
        Ok(())
    }
}

/// How many answers of `fcm` had `status`.
fn answered(fcm: &MockFcm, status: u16) -> u64 {
    fcm.status_counts().get(&status).copied().unwrap_or(0) as u64
}

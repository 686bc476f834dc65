//! The demo's browsers: a mock Web Push service on two origins that mints the subscriptions
//! (3 % of them then expired), a VAPID key they were made for, and the client settings.

use push_mock::{Certificates, MockWebPush, WebPushOptions};
use push_smol::push_proto::webpush::VapidKey;
use push_smol::{ClientBuilder, HttpConfig, WebPushConfig};

use super::fleet::{web_count, web_expired};
use crate::loopback::mock_tls;
use crate::mock::generate_p8;

/// The VAPID subject of the demo.
const SUBJECT: &str = "mailto:demo@example.com";

/// The running Web Push mock and the subscriptions it made.
#[derive(Debug)]
pub struct WebMock {
    mock: MockWebPush,
    /// The subscriptions' JSON, in the order of the fleet's browsers.
    pub subscriptions: Vec<String>,
    expired: usize,
    vapid_pem: String,
}

impl WebMock {
    /// Starts the service and mints the subscriptions of the browsers among `n` devices for a
    /// new VAPID key.
    pub fn start(n: u64, certs: &Certificates) -> Result<WebMock, String> {
        let vapid_pem = generate_p8()?;
        let public = VapidKey::from_pem(&vapid_pem)
            .map_err(|e| format!("cannot read the generated VAPID key: {e}"))?
            .public_key();
        let options = WebPushOptions::new()
            .origins(2)
            .application_server_key(public)
            .count_only(true);
        let mock = MockWebPush::start(options, certs)
            .map_err(|e| format!("cannot start the mock Web Push service: {e}"))?;
        let mut subscriptions = Vec::new();
        let mut expired = 0;
        for k in 0..web_count(n) {
            let minted = mock.subscribe(k % 2);
            if web_expired(k) {
                mock.expire(&minted.endpoint);
                expired += 1;
            }
            subscriptions.push(minted.json);
        }
        Ok(WebMock {
            mock,
            subscriptions,
            expired,
            vapid_pem,
        })
    }

    /// Adds Web Push with the demo's VAPID key and the mock CA to `builder`.
    pub fn configure(
        &self,
        builder: ClientBuilder,
        certs: &Certificates,
    ) -> Result<ClientBuilder, String> {
        let config = WebPushConfig::from_pem(&self.vapid_pem, SUBJECT)
            .map_err(|e| e.to_string())?
            .tls(mock_tls(certs, false)?);
        Ok(builder.webpush(config))
    }

    /// One line on the mock.
    pub fn describe(&self) -> String {
        format!(
            "mock Web Push {} (VAPID, {} subscriptions expired: 410)",
            self.mock.origins().join(" and "),
            self.expired
        )
    }

    /// One line on what the mock decrypted.
    pub fn stats(&self) -> String {
        format!(
            "Web Push: {} messages decrypted by the mock on {} connection(s)",
            self.mock.total_delivered(),
            self.mock.connections()
        )
    }

    /// Checks that every live subscription got exactly one message.
    pub fn check(&self) -> Result<(), String> {
        let want = self.subscriptions.len() - self.expired;
        let counts = self.mock.delivered_counts();
        let delivered = self.mock.total_delivered();
        if delivered != want || counts.values().any(|&count| count != 1) {
            return Err(format!(
                "the Web Push mock decrypted {delivered} messages, expected {want}, each once"
            ));
        }
        Ok(())
    }
}

//! Client settings for the in-process mock servers of `push mock`, `push demo` and
//! `push bench`.

use push_mock::fcm::demo_service_account;
use push_mock::{Certificates, FcmOptions, MockFcm};
use push_smol::{FcmConfig, HttpConfig, Tls};

/// The Firebase project of the mock FCM servers (and of their demo service account).
pub const FCM_PROJECT: &str = "push-demo";

/// TLS that trusts only the mocks' CA; with `identity`, it also presents the mocks' client
/// certificate.
pub fn mock_tls(certs: &Certificates, identity: bool) -> Result<Tls, String> {
    let tls = Tls::default()
        .only_custom_roots()
        .add_ca_pem(certs.ca_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    if !identity {
        return Ok(tls);
    }
    tls.client_identity_pem(
        certs.client_cert_pem.as_bytes(),
        certs.client_key_pem.as_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// The defaults of a mock FCM server for [`FCM_PROJECT`] and its demo service account.
pub fn fcm_options() -> Result<FcmOptions, String> {
    FcmOptions::demo(FCM_PROJECT).map_err(|e| format!("cannot load the demo service account: {e}"))
}

/// Starts a mock FCM server (and its token endpoint) with `options`.
pub fn start_fcm(options: FcmOptions, certs: &Certificates) -> Result<MockFcm, String> {
    MockFcm::start(options, certs).map_err(|e| format!("cannot start the mock FCM: {e}"))
}

/// The service-account JSON key file of the demo account, its `token_uri` set to `fcm`'s
/// token endpoint. Test and demo only.
pub fn fcm_service_account(fcm: &MockFcm) -> String {
    demo_service_account(FCM_PROJECT, &fcm.token_url())
}

/// FCM settings for the mock `fcm`: the demo service account, the mock's URL, trusting only
/// the mocks' CA.
pub fn fcm_config(fcm: &MockFcm, certs: &Certificates) -> Result<FcmConfig, String> {
    Ok(
        FcmConfig::from_service_account_json(&fcm_service_account(fcm))
            .and_then(|config| config.url(&fcm.url()))
            .map_err(|e| e.to_string())?
            .tls(mock_tls(certs, false)?),
    )
}

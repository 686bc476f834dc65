//! Service accounts: the public half the mock verifies assertions with, and the committed
//! demo accounts (test keys only).

use std::io;

use ring::signature::{KeyPair, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

/// The demo service account's RSA-2048 private key (PKCS#8 PEM). **Test and demo only**: it is
/// public, committed in `push-mock/src/fcm/testdata/`.
pub const DEMO_PRIVATE_KEY_PEM: &str = include_str!("testdata/demo-key-1.pem");
/// A second RSA-2048 private key (PKCS#8 PEM) unrelated to the demo account's: what a test
/// signs with to play a wrong key. **Test only**.
pub const OTHER_PRIVATE_KEY_PEM: &str = include_str!("testdata/demo-key-2.pem");
/// The `private_key_id` of the demo service accounts.
pub const DEMO_PRIVATE_KEY_ID: &str = "6d6f636b2d6b65792d30303030303030303030";
/// The OAuth2 scope FCM needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The service account the mock expects assertions from: its identity and the RSA public key
/// that verifies their signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `client_email`: the `iss` of the assertions.
    pub client_email: String,
    /// `private_key_id`: the `kid` of the assertions.
    pub private_key_id: String,
    /// `project_id`, when known (from a service-account JSON).
    pub project_id: Option<String>,
    /// The RSA public key, PKCS#1 `RSAPublicKey` DER.
    public_key: Vec<u8>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// The account with this email and key id whose public key is derived from `pem`, an RSA
    /// private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as in a service-account JSON).
    pub fn from_private_key_pem(
        client_email: impl Into<String>,
        private_key_id: impl Into<String>,
        pem: &str,
    ) -> io::Result<ServiceAccount> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|error| invalid(format!("not a PKCS#8 PEM private key: {error}")))?;
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|error| invalid(format!("not an RSA private key: {error}")))?;
        Ok(ServiceAccount {
            client_email: client_email.into(),
            private_key_id: private_key_id.into(),
            project_id: None,
            public_key: pair.public_key().as_ref().to_vec(),
        })
    }

    /// The account of a service-account JSON key file (`client_email`, `private_key_id`,
    /// `private_key`, and `project_id` when present).
    pub fn from_json(json: &str) -> io::Result<ServiceAccount> {
        let value: Value =
            serde_json::from_str(json).map_err(|error| invalid(format!("not JSON: {error}")))?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("the service account has no \"{name}\"")))
        };
        let mut account = ServiceAccount::from_private_key_pem(
            field("client_email")?,
            field("private_key_id")?,
            field("private_key")?,
        )?;
        account.project_id = value
            .get("project_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(account)
    }

    /// The demo account of `project` ([`DEMO_PRIVATE_KEY_PEM`], [`DEMO_PRIVATE_KEY_ID`],
    /// [`demo_client_email`]), the one [`demo_service_account`] describes.
    pub fn demo(project: &str) -> io::Result<ServiceAccount> {
        let mut account = ServiceAccount::from_private_key_pem(
            demo_client_email(project),
            DEMO_PRIVATE_KEY_ID,
            DEMO_PRIVATE_KEY_PEM,
        )?;
        account.project_id = Some(project.to_owned());
        Ok(account)
    }

    /// The RSA public key, PKCS#1 `RSAPublicKey` DER.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
}

/// The `client_email` of the demo service account of `project`.
pub fn demo_client_email(project: &str) -> String {
    format!("push-mock@{project}.iam.gserviceaccount.com")
}

/// A complete service-account JSON key file for the demo account of `project` (key
/// [`DEMO_PRIVATE_KEY_PEM`]), with `token_uri` set to `token_uri` (use
/// [`MockFcm::token_url`](crate::MockFcm::token_url)). **Test and demo only.**
pub fn demo_service_account(project: &str, token_uri: &str) -> String {
    service_account_json(project, token_uri, DEMO_PRIVATE_KEY_PEM)
}

/// [`demo_service_account`] with [`OTHER_PRIVATE_KEY_PEM`] instead: same identity, wrong key;
/// the mock's token endpoint rejects its assertions (`Invalid JWT Signature.`).
pub fn wrong_key_service_account(project: &str, token_uri: &str) -> String {
    service_account_json(project, token_uri, OTHER_PRIVATE_KEY_PEM)
}

fn service_account_json(project: &str, token_uri: &str, private_key: &str) -> String {
    let email = demo_client_email(project);
    let cert_url = format!(
        "https://www.googleapis.com/robot/v1/metadata/x509/{}",
        email.replace('@', "%40")
    );
    let account = json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": DEMO_PRIVATE_KEY_ID,
        "private_key": private_key,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": cert_url,
        "universe_domain": "googleapis.com",
    });
    // Pretty, as Google's console writes them.
    serde_json::to_string_pretty(&account).unwrap_or_else(|_| account.to_string())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_json_round_trips_and_the_two_keys_differ() {
        let json = demo_service_account("demo-project", "https://localhost:1/token");
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "service_account");
        assert_eq!(value["token_uri"], "https://localhost:1/token");
        let account = ServiceAccount::from_json(&json).unwrap();
        assert_eq!(account, ServiceAccount::demo("demo-project").unwrap());
        assert_eq!(account.project_id.as_deref(), Some("demo-project"));
        assert_eq!(
            account.client_email,
            "push-mock@demo-project.iam.gserviceaccount.com"
        );
        let wrong =
            ServiceAccount::from_json(&wrong_key_service_account("demo-project", "x")).unwrap();
        assert_eq!(wrong.client_email, account.client_email);
        assert_ne!(wrong.public_key(), account.public_key());
    }

    #[test]
    fn bad_key_material_is_an_error() {
        assert!(ServiceAccount::from_private_key_pem("a", "b", "not a key").is_err());
        assert!(ServiceAccount::from_json("{}").is_err());
        assert!(ServiceAccount::from_json("[").is_err());
        // A P-256 key is no RSA key.
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let ec = p256::SecretKey::from_slice(&[7; 32])
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        assert!(ServiceAccount::from_private_key_pem("a", "b", &ec).is_err());
    }
}

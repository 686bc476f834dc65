//! [`ServiceAccount`]: the Google service-account JSON file, parsed and checked field by field.
//!
//! The private key is kept out of every `Debug` and error text: a misconfigured deployment's
//! logs must not become a credential leak.

use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

/// The token endpoint Google writes into service-account files.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A Google service account, as downloaded from the Firebase / Cloud console.
///
/// Only the fields the OAuth2 JWT-bearer flow needs are kept. `Debug` shows every field but
/// the private key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceAccount {
    /// The Google Cloud project, which is also the FCM project (`/v1/projects/<id>/...`).
    pub project_id: String,
    /// The key's id: the `kid` of the signed assertion.
    pub private_key_id: String,
    /// The account's e-mail address: the assertion's issuer (`iss`).
    pub client_email: String,
    /// Where access tokens are requested (the assertion's audience, `aud`).
    pub token_uri: String,
    private_key: String,
}

/// Why a service-account file is unusable. Never contains the private key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ServiceAccountError {
    /// The text is not a JSON object.
    #[error("the service account file is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent.
    #[error("the service account file has no {0:?} field")]
    MissingField(&'static str),
    /// A field is present but not a non-empty string.
    #[error("the service account field {0:?} must be a non-empty string")]
    WrongType(&'static str),
    /// `type` is not `service_account` (e.g. an OAuth client or user credentials file).
    #[error("the \"type\" field is {0:?}, expected \"service_account\"")]
    NotAServiceAccount(String),
}

impl ServiceAccount {
    /// Parses the JSON text of a service-account file.
    pub fn from_json(json: &str) -> Result<Self, ServiceAccountError> {
        let value: Value = serde_json::from_str(json).map_err(|error| {
            // serde_json's message names a position, never the content.
            ServiceAccountError::NotJson(error.to_string())
        })?;
        let Value::Object(fields) = value else {
            return Err(ServiceAccountError::NotJson("not an object".into()));
        };
        let kind = string(&fields, "type")?;
        if kind != "service_account" {
            return Err(ServiceAccountError::NotAServiceAccount(
                kind.chars().take(64).collect(),
            ));
        }
        Ok(ServiceAccount {
            project_id: string(&fields, "project_id")?,
            private_key_id: string(&fields, "private_key_id")?,
            private_key: string(&fields, "private_key")?,
            client_email: string(&fields, "client_email")?,
            token_uri: string(&fields, "token_uri")?,
        })
    }

    /// An account from its parts (for keys kept elsewhere, and for tests).
    pub fn new(
        project_id: impl Into<String>,
        client_email: impl Into<String>,
        private_key_id: impl Into<String>,
        private_key_pem: impl Into<String>,
    ) -> Self {
        ServiceAccount {
            project_id: project_id.into(),
            private_key_id: private_key_id.into(),
            client_email: client_email.into(),
            token_uri: DEFAULT_TOKEN_URI.into(),
            private_key: private_key_pem.into(),
        }
    }

    /// The PKCS#8 PEM text of the private key. Handle with care: it is the credential.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key
    }
}

impl fmt::Debug for ServiceAccount {
    /// Every field but the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("private_key_id", &self.private_key_id)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn string(fields: &Map<String, Value>, name: &'static str) -> Result<String, ServiceAccountError> {
    match fields.get(name) {
        None => Err(ServiceAccountError::MissingField(name)),
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(_) => Err(ServiceAccountError::WrongType(name)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) const KEY_A: &str = include_str!("testdata/test-only-rsa2048-a.pem");
    pub(crate) const KEY_B: &str = include_str!("testdata/test-only-rsa2048-b.pem");

    /// A complete service-account file around `KEY_A`.
    pub(crate) fn account_json() -> Value {
        json!({
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "0123456789abcdef",
            "private_key": KEY_A,
            "client_email": "push@demo-project.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
    }

    pub(crate) fn account() -> ServiceAccount {
        ServiceAccount::from_json(&account_json().to_string()).unwrap()
    }

    #[test]
    fn a_downloaded_file_parses() {
        let account = account();
        assert_eq!(account.project_id, "demo-project");
        assert_eq!(account.private_key_id, "0123456789abcdef");
        assert_eq!(
            account.client_email,
            "push@demo-project.iam.gserviceaccount.com"
        );
        assert_eq!(account.token_uri, DEFAULT_TOKEN_URI);
        assert_eq!(account.private_key_pem(), KEY_A);
    }

    #[test]
    fn every_missing_or_mistyped_field_is_named() {
        for field in [
            "type",
            "project_id",
            "private_key_id",
            "private_key",
            "client_email",
            "token_uri",
        ] {
            let mut file = account_json();
            file.as_object_mut().unwrap().remove(field);
            assert_eq!(
                ServiceAccount::from_json(&file.to_string()),
                Err(ServiceAccountError::MissingField(field))
            );
            for wrong in [json!(1), json!(null), json!(""), json!(["x"])] {
                file[field] = wrong;
                assert_eq!(
                    ServiceAccount::from_json(&file.to_string()),
                    Err(ServiceAccountError::WrongType(field))
                );
            }
        }
        let mut file = account_json();
        file["type"] = json!("authorized_user");
        assert_eq!(
            ServiceAccount::from_json(&file.to_string()),
            Err(ServiceAccountError::NotAServiceAccount(
                "authorized_user".into()
            ))
        );
        assert!(matches!(
            ServiceAccount::from_json("[1]"),
            Err(ServiceAccountError::NotJson(_))
        ));
        assert!(matches!(
            ServiceAccount::from_json("{\"private_key\": \"-----BEGIN"),
            Err(ServiceAccountError::NotJson(_))
        ));
    }

    #[test]
    fn the_private_key_never_shows() {
        let account = account();
        let body = KEY_A.lines().nth(1).unwrap();
        let debug = format!("{account:?}");
        assert!(!debug.contains(body) && !debug.contains("BEGIN"), "{debug}");
        assert!(debug.contains("demo-project"));
        // Errors about a broken file do not echo the key either.
        let mut file = account_json().to_string();
        file.truncate(file.len() - 5);
        let error = ServiceAccount::from_json(&file).unwrap_err().to_string();
        assert!(!error.contains(body), "{error}");
    }
}

//! TLS settings: which roots to trust and which client identity to present.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;

/// TLS settings shared by the APNs and GCM connections of a client.
///
/// Verification is always on. By default the server is checked against the webpki roots
/// (Mozilla's list); [`add_ca_pem`](Tls::add_ca_pem) adds a private CA (for tests and
/// mocks), and [`only_custom_roots`](Tls::only_custom_roots) drops the public roots.
/// `Debug` never shows the private key.
#[derive(Clone, Default)]
pub struct Tls {
    extra_roots: Vec<CertificateDer<'static>>,
    without_public_roots: bool,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("extra_roots", &self.extra_roots.len())
            .field("public_roots", &!self.without_public_roots)
            .field(
                "client_identity",
                &self.identity.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|error| Error::ReadFile {
        path: path.display().to_string(),
        reason: error.to_string(),
    })
}

fn certificates(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Pem {
            origin: origin.to_owned(),
            reason: format!("bad certificate PEM: {error}"),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            origin: origin.to_owned(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

impl Tls {
    /// Trusts the CA certificates in `pem` in addition to the default roots.
    pub fn add_ca_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.extra_roots
            .extend(certificates(pem, "CA certificate")?);
        Ok(self)
    }

    /// Trusts the CA certificates in the PEM file at `path`.
    pub fn add_ca_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = read_file(path)?;
        let origin = path.display().to_string();
        let mut tls = self;
        tls.extra_roots.extend(certificates(&pem, &origin)?);
        Ok(tls)
    }

    /// Trusts only the CAs added with `add_ca_*`, not the public webpki roots.
    pub fn only_custom_roots(mut self) -> Self {
        self.without_public_roots = true;
        self
    }

    /// Presents this client certificate (chain) and private key, as APNs requires.
    pub fn client_identity_pem(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        self.identity = Some(identity(
            cert_pem,
            "client certificate",
            key_pem,
            "client key",
        )?);
        Ok(self)
    }

    /// Presents the client certificate and key read from PEM files.
    pub fn client_identity_files(
        mut self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let (cert_pem, key_pem) = (read_file(cert)?, read_file(key)?);
        let cert_origin = cert.display().to_string();
        let key_origin = key.display().to_string();
        self.identity = Some(identity(&cert_pem, &cert_origin, &key_pem, &key_origin)?);
        Ok(self)
    }

    /// The rustls configuration (ring provider, TLS 1.2 and 1.3, verification on).
    pub(crate) fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, Error> {
        let mut roots = RootCertStore::empty();
        if !self.without_public_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for root in &self.extra_roots {
            roots.add(root.clone()).map_err(|error| Error::Pem {
                origin: "CA certificate".into(),
                reason: format!("unusable as a root: {error}"),
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::Config {
                field: "tls",
                reason: error.to_string(),
            })?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|error| Error::Pem {
                    origin: "client identity".into(),
                    reason: format!("certificate and key do not fit together: {error}"),
                })?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn identity(
    cert_pem: &[u8],
    cert_origin: &str,
    key_pem: &[u8],
    key_origin: &str,
) -> Result<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>), Error> {
    let chain = certificates(cert_pem, cert_origin)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| Error::Pem {
        origin: key_origin.to_owned(),
        reason: format!("no usable private key: {error}"),
    })?;
    Ok((chain, Arc::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_and_bad_pem_name_what_is_at_fault() {
        let error = Tls::default()
            .client_identity_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/cert.pem"),
            "{error}"
        );

        let dir = std::env::temp_dir().join(format!("push-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let error = Tls::default().add_ca_file(&cert).unwrap_err();
        assert!(error.to_string().contains("cert.pem"), "{error}");
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();

        let error = Tls::default().client_identity_pem(b"", b"").unwrap_err();
        assert!(error.to_string().contains("client certificate"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let tls = Tls {
            identity: Some((
                Vec::new(),
                Arc::new(PrivateKeyDer::from(
                    rustls::pki_types::PrivatePkcs8KeyDer::from(b"SECRET-KEY-BYTES".to_vec()),
                )),
            )),
            ..Tls::default()
        };
        let shown = format!("{tls:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("83, 69, 67"), "{shown}");
    }
}

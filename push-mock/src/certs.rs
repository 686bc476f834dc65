//! Throw-away TLS material: a CA, a server certificate and a client certificate.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A freshly generated CA with a server and a client certificate signed by it.
///
/// The server certificate names `localhost` and the IP address `127.0.0.1`
/// ([`Certificates::SERVER_NAME`] is the name clients should check). The client certificate
/// plays the part of the "Apple Push Services" certificate a provider presents to the APNs
/// gateway and feedback service.
///
/// Every call to [`generate`](Certificates::generate) makes a new, unrelated CA, so a second
/// `Certificates` is what a test uses for an "untrusted server certificate" (a client trusting
/// only the other CA must fail the handshake).
#[derive(Clone)]
pub struct Certificates {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate (for `localhost` and `127.0.0.1`), PEM.
    pub server_cert_pem: String,
    /// The server certificate's private key, PKCS#8 PEM.
    pub server_key_pem: String,
    /// The client certificate, PEM.
    pub client_cert_pem: String,
    /// The client certificate's private key, PKCS#8 PEM.
    pub client_key_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    client_cert_der: CertificateDer<'static>,
    client_key_der: Vec<u8>,
}

/// Where [`Certificates::write_to`] put the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePaths {
    /// `ca.pem`: the CA certificate.
    pub ca: PathBuf,
    /// `server.pem`: the server certificate.
    pub server_cert: PathBuf,
    /// `server.key`: the server's private key.
    pub server_key: PathBuf,
    /// `client.pem`: the client certificate.
    pub client_cert: PathBuf,
    /// `client.key`: the client's private key.
    pub client_key: PathBuf,
    /// `client-combined.pem`: the client certificate followed by its key, the single-file form
    /// many APNs clients take.
    pub client_combined: PathBuf,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("ca_der_len", &self.ca_der.len())
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// The DNS name in the server certificate; the name a client should verify.
    pub const SERVER_NAME: &'static str = "localhost";

    /// Generates a new CA and the server and client certificates it signs (ECDSA P-256).
    pub fn generate() -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "push-mock test CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server_params =
            CertificateParams::new(vec![Self::SERVER_NAME.to_owned(), "127.0.0.1".to_owned()])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, Self::SERVER_NAME);
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params.distinguished_name.push(
            DnType::CommonName,
            "Apple Push Services: com.example.push-mock",
        );
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer)?;

        Ok(Certificates {
            ca_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            ca_der: ca.der().clone(),
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
            client_cert_der: client_cert.der().clone(),
            client_key_der: client_key.serialize_der(),
        })
    }

    /// Writes the PEM files into `dir` (which must exist) and returns their paths.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> io::Result<CertificatePaths> {
        let dir = dir.as_ref();
        let paths = CertificatePaths {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            client_combined: dir.join("client-combined.pem"),
        };
        fs::write(&paths.ca, &self.ca_pem)?;
        fs::write(&paths.server_cert, &self.server_cert_pem)?;
        fs::write(&paths.server_key, &self.server_key_pem)?;
        fs::write(&paths.client_cert, &self.client_cert_pem)?;
        fs::write(&paths.client_key, &self.client_key_pem)?;
        fs::write(
            &paths.client_combined,
            format!("{}{}", self.client_cert_pem, self.client_key_pem),
        )?;
        Ok(paths)
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The server certificate, DER.
    pub fn server_cert_der(&self) -> &CertificateDer<'static> {
        &self.server_cert_der
    }

    /// The client certificate, DER.
    pub fn client_cert_der(&self) -> &CertificateDer<'static> {
        &self.client_cert_der
    }

    /// The server's private key, PKCS#8 DER.
    pub fn server_key_der(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.server_key_der.clone()).into()
    }

    /// The client's private key, PKCS#8 DER.
    pub fn client_key_der(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.client_key_der.clone()).into()
    }

    /// A root store holding only this CA.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        // Our own freshly generated CA always parses.
        let _ = roots.add(self.ca_der.clone());
        roots
    }

    /// A client configuration (ring provider, TLS 1.3 and 1.2) trusting only this CA, presenting
    /// the client certificate when `client_auth` is true.
    pub fn client_config(&self, client_auth: bool) -> Result<Arc<ClientConfig>, rustls::Error> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS13, &TLS12])?
            .with_root_certificates(self.root_store());
        let config = if client_auth {
            builder
                .with_client_auth_cert(vec![self.client_cert_der.clone()], self.client_key_der())?
        } else {
            builder.with_no_client_auth()
        };
        Ok(Arc::new(config))
    }

    /// The server configuration the mocks use (ring provider, TLS 1.3 and 1.2), with the server
    /// certificate; when `require_client_cert` is true, clients must present a certificate
    /// signed by this CA.
    pub fn server_config(
        &self,
        require_client_cert: bool,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        self.build_server_config(require_client_cert).map(Arc::new)
    }

    fn build_server_config(
        &self,
        require_client_cert: bool,
    ) -> Result<ServerConfig, rustls::Error> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS13, &TLS12])?;
        let builder = if require_client_cert {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(self.root_store()),
                provider(),
            )
            .build()
            .map_err(|error| rustls::Error::General(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder.with_single_cert(vec![self.server_cert_der.clone()], self.server_key_der())
    }
}

/// The crypto provider, always explicit: nothing depends on a process-wide default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// [`Certificates::server_config`] with the error as an [`io::Error`], for the servers.
pub(crate) fn server_config(
    certs: &Certificates,
    require_client_cert: bool,
) -> io::Result<Arc<ServerConfig>> {
    server_config_with_alpn(certs, require_client_cert, Vec::new())
}

/// [`server_config`] offering the given ALPN protocols.
pub(crate) fn server_config_with_alpn(
    certs: &Certificates,
    require_client_cert: bool,
    alpn: Vec<Vec<u8>>,
) -> io::Result<Arc<ServerConfig>> {
    let mut config = certs
        .build_server_config(require_client_cert)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn files_round_trip_and_each_ca_is_new() {
        let certs = Certificates::generate().unwrap();
        let dir = std::env::temp_dir().join(format!("push-mock-certs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let paths = certs.write_to(&dir).unwrap();
        let ca = CertificateDer::from_pem_file(&paths.ca).unwrap();
        assert_eq!(&ca, certs.ca_der());
        let client = CertificateDer::from_pem_file(&paths.client_cert).unwrap();
        assert_eq!(&client, certs.client_cert_der());
        let server = CertificateDer::from_pem_file(&paths.server_cert).unwrap();
        assert_eq!(&server, certs.server_cert_der());
        PrivateKeyDer::from_pem_file(&paths.server_key).unwrap();
        PrivateKeyDer::from_pem_file(&paths.client_key).unwrap();
        // The combined file holds both.
        CertificateDer::from_pem_file(&paths.client_combined).unwrap();
        PrivateKeyDer::from_pem_file(&paths.client_combined).unwrap();
        fs::remove_dir_all(&dir).unwrap();

        let other = Certificates::generate().unwrap();
        assert_ne!(other.ca_der(), certs.ca_der());
        assert_ne!(other.ca_pem, certs.ca_pem);
        certs.client_config(true).unwrap();
        certs.server_config(true).unwrap();
    }
}

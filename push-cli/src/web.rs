//! Web Push from the command line: the client settings of `push send --vapid-key` and
//! `push vapid generate`.

use std::fs::OpenOptions;
use std::io::Write;

use push_smol::push_proto::webpush::{Declarative, VapidKey};
use push_smol::{HttpConfig, WebPushConfig};

use crate::cli::{VapidArgs, VapidCommand, WebArgs};
use crate::config::tls;
use crate::main_error::Failure;

/// Web Push settings from the arguments, if `--vapid-key` was given. The key file holds a PEM
/// key or the raw key in base64url; neither is ever printed.
pub fn webpush(args: &WebArgs) -> Result<Option<WebPushConfig>, String> {
    let (Some(path), Some(subject)) = (&args.vapid_key, &args.vapid_subject) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("--vapid-key {}: {error}", path.display()))?;
    let config = if text.contains("-----BEGIN") {
        WebPushConfig::from_pem(&text, subject)
    } else {
        WebPushConfig::from_base64url(text.trim(), subject)
    };
    let mut config = config.map_err(|error| match error {
        push_smol::Error::Pem { reason, .. } => format!("--vapid-key {}: {reason}", path.display()),
        other => format!("--vapid-key/--vapid-subject: {other}"),
    })?;
    if let Some(ttl) = args.web_ttl {
        config = config.ttl(ttl);
    }
    if let Some(urgency) = args.web_urgency {
        config = config.urgency(urgency);
    }
    if let Some(navigate) = &args.web_navigate {
        config = config.declarative(Declarative::new(navigate));
    }
    if let Some(topic) = &args.web_topic {
        config = config
            .topic(topic)
            .map_err(|error| format!("--web-topic: {error}"))?;
    }
    Ok(Some(config.tls(tls(args.web_ca.as_deref(), None)?)))
}

/// `push vapid`.
pub fn command(args: VapidArgs) -> Result<(), Failure> {
    match args.command {
        VapidCommand::Generate(generate) => {
            let public = generate_key(&generate.out).map_err(Failure::Usage)?;
            println!("{public}");
            eprintln!(
                "push: the private key is in {} (give it to push send --vapid-key); the line above is the public key, the web app's applicationServerKey",
                generate.out.display()
            );
            Ok(())
        }
    }
}

/// Writes a new P-256 private key to `out` as PKCS#8 PEM (readable by its owner only on
/// Unix); returns the public key in base64url.
pub fn generate_key(out: &std::path::Path) -> Result<String, String> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|error| format!("cannot make a P-256 key: {error}"))?;
    let pem = pair.serialize_pem();
    let public = VapidKey::from_pem(&pem)
        .map_err(|error| format!("the new key does not read back: {error}"))?
        .public_key();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(out)
        .map_err(|error| format!("cannot create {}: {error}", out.display()))?;
    file.write_all(pem.as_bytes())
        .map_err(|error| format!("cannot write {}: {error}", out.display()))?;
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_read_back_by_send_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("vapid.pem");
        let public = generate_key(&out).unwrap();
        assert_eq!(public.len(), 87, "65 bytes in unpadded base64url");
        let args = WebArgs {
            vapid_key: Some(out.clone()),
            vapid_subject: Some("mailto:ops@example.com".into()),
            web_ca: None,
            web_ttl: Some(60),
            web_urgency: None,
            web_topic: Some("news".into()),
            web_navigate: Some("https://example.com/news".into()),
        };
        let config = webpush(&args).unwrap().unwrap();
        assert_eq!(config.public_key(), public);
        let debug = format!("{config:?}");
        let pem = std::fs::read_to_string(&out).unwrap();
        let body = pem.lines().nth(1).unwrap();
        assert!(!debug.contains(body), "{debug}");
        assert!(generate_key(&out).is_err(), "an existing file is kept");

        let raw = dir.path().join("raw.txt");
        std::fs::write(&raw, "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw\n").unwrap();
        let args = WebArgs {
            vapid_key: Some(raw),
            web_topic: None,
            ..args
        };
        assert!(webpush(&args).unwrap().is_some());
        let bad = WebArgs {
            vapid_subject: Some("ops@example.com".into()),
            ..args
        };
        assert!(webpush(&bad).unwrap_err().contains("subject"));
    }
}

//! `push.toml`: the apps a `push send --app` or a `push worker` sends for, each with its own
//! provider settings. Every key is the name of the `push send` flag it stands for (`apns_url`
//! for `--apns-url`); secrets are paths to files, never the secrets themselves, and a relative
//! path is taken from the file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{ApnsArgs, FcmArgs, GcmArgs, ProviderArgs, WebArgs};

/// The apps of a `push.toml`, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Apps {
    /// The file they were read from, for messages.
    pub file: PathBuf,
    /// Each app's settings.
    pub apps: BTreeMap<String, App>,
}

/// The file as written: only `[apps.NAME]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    apps: BTreeMap<String, App>,
}

/// One app's provider settings, as the `push send` flags of the same names take them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    apns_url: Option<String>,
    apns_topic: Option<String>,
    apns_key_p8: Option<PathBuf>,
    apns_key_id: Option<String>,
    apns_team_id: Option<String>,
    apns_cert: Option<PathBuf>,
    apns_key: Option<PathBuf>,
    apns_ca: Option<PathBuf>,
    fcm_service_account: Option<PathBuf>,
    fcm_project: Option<String>,
    fcm_url: Option<String>,
    fcm_token_url: Option<String>,
    fcm_ca: Option<PathBuf>,
    vapid_key: Option<PathBuf>,
    vapid_subject: Option<String>,
    web_ca: Option<PathBuf>,
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Apps, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(path, &text)
}

/// Parses and checks the text of `path`; relative paths are made relative to its directory.
pub fn parse(path: &Path, text: &str) -> Result<Apps, String> {
    let file: File = toml::from_str(text).map_err(|e| {
        // toml's message quotes the offending line: it may hold a value, never a secret
        // (secrets are paths), but keep it to its first line with the position.
        let message = e.message().to_owned();
        match e.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                format!("{} line {line}: {message}", path.display())
            }
            None => format!("{}: {message}", path.display()),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut apps = BTreeMap::new();
    for (name, app) in file.apps {
        let app = app
            .resolved(base)
            .check()
            .map_err(|e| format!("{} [apps.{name}]: {e}", path.display()))?;
        apps.insert(name, app);
    }
    Ok(Apps {
        file: path.to_owned(),
        apps,
    })
}

impl Apps {
    /// The settings of app `name`, or an error naming the file and the apps it has.
    pub fn get(&self, name: &str) -> Result<&App, String> {
        self.apps.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.apps.keys().map(String::as_str).collect();
            format!(
                "{} has no app {name:?} (it has: {})",
                self.file.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        })
    }
}

impl App {
    /// Relative paths taken from `base`.
    fn resolved(mut self, base: &Path) -> App {
        for path in [
            &mut self.apns_key_p8,
            &mut self.apns_cert,
            &mut self.apns_key,
            &mut self.apns_ca,
            &mut self.fcm_service_account,
            &mut self.fcm_ca,
            &mut self.vapid_key,
            &mut self.web_ca,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        self
    }

    /// The files this app names (keys, certificates, service accounts, CAs), as resolved.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Path> {
        [
            &self.apns_key_p8,
            &self.apns_cert,
            &self.apns_key,
            &self.apns_ca,
            &self.fcm_service_account,
            &self.fcm_ca,
            &self.vapid_key,
            &self.web_ca,
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
    }

    /// The settings that need each other, as the flags' rules have them.
    fn check(self) -> Result<App, String> {
        fn need(field: &str, present: bool, other: &str) -> Result<(), String> {
            if present {
                Ok(())
            } else {
                Err(format!("{field} needs {other}"))
            }
        }
        let apns = self.apns_url.is_some();
        if !apns {
            for (field, set) in [
                ("apns_topic", self.apns_topic.is_some()),
                ("apns_key_p8", self.apns_key_p8.is_some()),
                ("apns_cert", self.apns_cert.is_some()),
                ("apns_ca", self.apns_ca.is_some()),
            ] {
                need(field, !set, "apns_url")?;
            }
        } else if self.apns_key_p8.is_some() {
            need("apns_key_p8", self.apns_key_id.is_some(), "apns_key_id")?;
            need("apns_key_p8", self.apns_team_id.is_some(), "apns_team_id")?;
            need("apns_key_p8", self.apns_topic.is_some(), "apns_topic")?;
            if self.apns_cert.is_some() || self.apns_key.is_some() {
                return Err("apns_key_p8 (token auth) and apns_cert/apns_key (certificate auth) exclude each other".into());
            }
        } else if self.apns_cert.is_none() || self.apns_key.is_none() {
            return Err("apns_url needs apns_key_p8 with apns_key_id and apns_team_id (token auth), or apns_cert and apns_key (certificate auth)".into());
        }
        for (field, set) in [
            ("apns_key_id", self.apns_key_id.is_some()),
            ("apns_team_id", self.apns_team_id.is_some()),
        ] {
            if set {
                need(field, self.apns_key_p8.is_some(), "apns_key_p8")?;
            }
        }
        if self.fcm_service_account.is_none() {
            for (field, set) in [
                ("fcm_project", self.fcm_project.is_some()),
                ("fcm_url", self.fcm_url.is_some()),
                ("fcm_token_url", self.fcm_token_url.is_some()),
                ("fcm_ca", self.fcm_ca.is_some()),
            ] {
                need(field, !set, "fcm_service_account")?;
            }
        }
        need(
            "vapid_key",
            self.vapid_key.is_some() == self.vapid_subject.is_some(),
            "vapid_subject (and vapid_subject needs vapid_key)",
        )?;
        if self.web_ca.is_some() {
            need("web_ca", self.vapid_key.is_some(), "vapid_key")?;
        }
        if !apns && self.fcm_service_account.is_none() && self.vapid_key.is_none() {
            return Err("no provider: give apns_url, fcm_service_account and/or vapid_key".into());
        }
        Ok(self)
    }

    /// The `push send` provider arguments this app stands for.
    pub fn args(&self) -> ProviderArgs {
        ProviderArgs {
            apns: ApnsArgs {
                apns: None,
                apns_checkpoints: true,
                apns_url: self.apns_url.clone(),
                apns_topic: self.apns_topic.clone(),
                apns_push_type: None,
                apns_key_p8: self.apns_key_p8.clone(),
                apns_key_id: self.apns_key_id.clone(),
                apns_team_id: self.apns_team_id.clone(),
                apns_cert: self.apns_cert.clone(),
                apns_key: self.apns_key.clone(),
                apns_ca: self.apns_ca.clone(),
            },
            gcm: GcmArgs {
                gcm_url: None,
                gcm_key: None,
                gcm_ca: None,
                gcm_batch: None,
            },
            fcm: FcmArgs {
                fcm_service_account: self.fcm_service_account.clone(),
                fcm_project: self.fcm_project.clone(),
                fcm_url: self.fcm_url.clone(),
                fcm_token_url: self.fcm_token_url.clone(),
                fcm_ca: self.fcm_ca.clone(),
                dry_run: false,
            },
            web: WebArgs {
                vapid_key: self.vapid_key.clone(),
                vapid_subject: self.vapid_subject.clone(),
                web_ca: self.web_ca.clone(),
                web_ttl: None,
                web_urgency: None,
                web_topic: None,
                web_navigate: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[apps.shop]
apns_url = "https://api.push.apple.com"
apns_topic = "com.example.shop"
apns_key_p8 = "keys/AuthKey.p8"
apns_key_id = "ABC123DEFG"
apns_team_id = "TEAM123456"
fcm_service_account = "/etc/push/shop.json"

[apps.news]
vapid_key = "vapid.pem"
vapid_subject = "mailto:ops@example.com"
"#;

    fn parsed(text: &str) -> Result<Apps, String> {
        parse(Path::new("/etc/push/push.toml"), text)
    }

    #[test]
    fn apps_are_read_with_paths_from_the_files_directory() {
        let apps = parsed(FILE).unwrap();
        assert_eq!(apps.apps.len(), 2);
        let shop = apps.get("shop").unwrap().args();
        assert_eq!(
            shop.apns.apns_key_p8.as_deref(),
            Some(Path::new("/etc/push/keys/AuthKey.p8"))
        );
        assert_eq!(shop.apns.apns_topic.as_deref(), Some("com.example.shop"));
        assert_eq!(
            shop.fcm.fcm_service_account.as_deref(),
            Some(Path::new("/etc/push/shop.json"))
        );
        let files: Vec<&Path> = apps.get("shop").unwrap().files().collect();
        assert_eq!(
            files,
            [
                Path::new("/etc/push/keys/AuthKey.p8"),
                Path::new("/etc/push/shop.json")
            ]
        );
        let news = apps.get("news").unwrap().args();
        assert_eq!(
            news.web.vapid_key.as_deref(),
            Some(Path::new("/etc/push/vapid.pem"))
        );
        assert!(news.apns.apns_url.is_none());
    }

    #[test]
    fn an_unknown_app_names_the_file_and_the_apps() {
        let error = parsed(FILE).unwrap().get("blog").unwrap_err();
        assert_eq!(
            error,
            "/etc/push/push.toml has no app \"blog\" (it has: news, shop)"
        );
    }

    #[test]
    fn errors_name_the_file_the_app_and_the_field() {
        let error =
            parsed("[apps.shop]\napns_url = \"https://x\"\napns_key_p8 = \"k.p8\"\n").unwrap_err();
        assert_eq!(
            error,
            "/etc/push/push.toml [apps.shop]: apns_key_p8 needs apns_key_id"
        );
        let error = parsed("[apps.shop]\napns_topic = \"com.x\"\n").unwrap_err();
        assert_eq!(
            error,
            "/etc/push/push.toml [apps.shop]: apns_topic needs apns_url"
        );
        let error = parsed("[apps.shop]\nvapid_subject = \"mailto:a@b\"\n").unwrap_err();
        assert!(
            error.contains("[apps.shop]: vapid_key needs vapid_subject"),
            "{error}"
        );
        let error = parsed("[apps.empty]\n").unwrap_err();
        assert!(error.contains("[apps.empty]: no provider"), "{error}");
        let error = parsed(
            "[apps.shop]\napns_url = \"https://x\"\napns_cert = \"c.pem\"\napns_key = \"k.pem\"\napns_key_id = \"A\"\n",
        )
        .unwrap_err();
        assert!(error.contains("apns_key_id needs apns_key_p8"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_syntax_name_the_line() {
        let error =
            parsed("[apps.shop]\nvapid_key = \"v.pem\"\nvapid_subjet = \"x\"\n").unwrap_err();
        assert!(error.starts_with("/etc/push/push.toml line 3: "), "{error}");
        assert!(error.contains("vapid_subjet"), "{error}");
        let error = parsed("[apps.shop\n").unwrap_err();
        assert!(error.starts_with("/etc/push/push.toml line 1: "), "{error}");
        let error = parsed("[other]\n").unwrap_err();
        assert!(error.contains("other"), "{error}");
    }

    #[test]
    fn certificate_auth_is_accepted_and_secrets_stay_paths() {
        let apps = parsed(
            "[apps.legacy]\napns_url = \"https://x\"\napns_cert = \"c.pem\"\napns_key = \"k.pem\"\n",
        )
        .unwrap();
        let args = apps.get("legacy").unwrap().args();
        assert_eq!(
            args.apns.apns_key.as_deref(),
            Some(Path::new("/etc/push/k.pem"))
        );
    }

    #[test]
    fn a_command_line_provider_is_seen() {
        let apps = parsed(FILE).unwrap();
        let args = apps.get("news").unwrap().args();
        assert!(args.any_given());
        let none = App::default().args();
        assert!(!none.any_given());
    }
}

//! A worker's clients: the one of its provider flags, and one per app of its `push.toml`,
//! opened when a campaign first names the app. When the file's modification time changes
//! it is read again: the apps whose settings changed get a new client for the jobs read
//! after that (a job in flight keeps the client it started with); a file that does not
//! parse keeps the settings read before. Likewise when the content of a file an app names
//! changes (a key rotated in place): a new client, or the one before if the new file does
//! not make one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use push_smol::Client;

use super::credentials::{self, Fingerprint};
use crate::apps::{self, App, Apps};
use crate::change::ProviderNames;
use crate::config;

/// Why a campaign's devices cannot be sent: each gets this result, none is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The result's code: `unknown_app` (no such app here), or `app_unusable` (its
    /// settings do not make a client: a key file missing, say).
    pub code: &'static str,
    /// The reason in words, naming the app and the file.
    pub detail: String,
}

/// The clients of one worker, shared by its job slots.
pub struct Clients {
    /// The client of the provider flags, if the worker was given any.
    default: Option<Client>,
    /// The apps file, if `--config` was given.
    file: Option<Watched>,
    connections: Option<usize>,
    rate: Option<u32>,
}

/// The apps file as last read, and the clients opened for its apps.
struct Watched {
    path: PathBuf,
    modified: Option<SystemTime>,
    apps: Apps,
    clients: HashMap<String, Opened>,
}

/// An app's client and the files it was opened from.
struct Opened {
    client: Client,
    /// The app's files when the client was opened, or when a change of them last failed to
    /// open one (so that a broken file is reported once, not before every job).
    files: Fingerprint,
}

impl Clients {
    /// The clients of a worker: `default` for campaigns without an app, the apps of
    /// `config` (read now: an error is the worker's usage error) for the others.
    pub fn new(
        default: Option<Client>,
        config: Option<PathBuf>,
        connections: Option<usize>,
        rate: Option<u32>,
    ) -> Result<Clients, String> {
        let file = match config {
            Some(path) => {
                let modified = modified(&path);
                let apps = apps::load(&path)?;
                Some(Watched {
                    path,
                    modified,
                    apps,
                    clients: HashMap::new(),
                })
            }
            None => None,
        };
        Ok(Clients {
            default,
            file,
            connections,
            rate,
        })
    }

    /// The client for a campaign of `app` (`None`: the provider flags' client), the apps
    /// file read again first if it changed.
    pub fn client(&mut self, app: Option<&str>) -> Result<Client, Refusal> {
        let Some(app) = app else {
            return self.default.clone().ok_or_else(|| Refusal {
                code: "unknown_app",
                detail: "the campaign names no app (push enqueue --app) and this worker has no provider flags".into(),
            });
        };
        let Some(file) = &mut self.file else {
            return Err(Refusal {
                code: "unknown_app",
                detail: format!("the campaign's app {app:?} needs a worker with --config"),
            });
        };
        file.reload();
        let settings = file.apps.get(app).map_err(|detail| Refusal {
            code: "unknown_app",
            detail,
        })?;
        // Taken before opening: a file changed meanwhile makes the next job open again.
        let files = credentials::fingerprint(settings);
        let open = || open(settings, self.connections, self.rate);
        let Some(opened) = file.clients.get_mut(app) else {
            let client = open().map_err(|e| Refusal {
                code: "app_unusable",
                detail: format!("{} [apps.{app}]: {e}", file.path.display()),
            })?;
            let opened = Opened {
                client: client.clone(),
                files,
            };
            file.clients.insert(app.to_owned(), opened);
            return Ok(client);
        };
        if opened.files != files {
            opened.files = files;
            match open() {
                Ok(client) => {
                    opened.client = client;
                    eprintln!(
                        "push: worker: {} [apps.{app}]: a file it names changed: a new client for the next jobs",
                        file.path.display()
                    );
                }
                // The message names the file and what is wrong with it, never its content.
                Err(e) => eprintln!(
                    "push: warning: {} [apps.{app}]: a file it names changed: {e}: keeping the client opened before",
                    file.path.display()
                ),
            }
        }
        Ok(opened.client.clone())
    }
}

/// A client of `app`'s settings.
fn open(app: &App, connections: Option<usize>, rate: Option<u32>) -> Result<Client, String> {
    config::client(&app.args(), connections, rate)
}

impl Clients {
    /// The providers of `app`'s settings as last read, `None` when it has none.
    pub fn app_providers(&self, app: &str) -> Option<ProviderNames> {
        let settings = self.file.as_ref()?.apps.get(app).ok()?;
        let args = settings.args();
        Some(config::provider_names(&args.apns, &args.fcm))
    }
}

impl Watched {
    /// Reads the file again if its modification time changed; the clients of apps whose
    /// settings changed (or are gone) are dropped, to be opened again on their next use.
    fn reload(&mut self) {
        let modified = modified(&self.path);
        if modified == self.modified {
            return;
        }
        self.modified = modified;
        match apps::load(&self.path) {
            Ok(apps) => {
                let old = std::mem::replace(&mut self.apps, apps);
                let apps = &self.apps;
                self.clients
                    .retain(|name, _| apps.apps.get(name) == old.apps.get(name));
                eprintln!(
                    "push: worker: {} read again ({} apps)",
                    self.path.display(),
                    self.apps.apps.len()
                );
            }
            Err(error) => {
                eprintln!("push: warning: {error}: keeping the apps read before");
            }
        }
    }
}

/// The file's modification time, `None` when it cannot be read.
fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "[apps.shop]\nvapid_key = \"vapid.pem\"\nvapid_subject = \"mailto:a@b\"\n";

    #[test]
    fn campaigns_without_a_usable_app_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("push.toml");
        std::fs::write(&path, APP).unwrap();
        let mut clients = Clients::new(None, Some(path.clone()), None, None).unwrap();
        let refusal = clients.client(Some("blog")).unwrap_err();
        assert_eq!(refusal.code, "unknown_app");
        assert!(refusal.detail.contains("no app \"blog\""), "{refusal:?}");
        // The key file is missing: the settings do not make a client.
        let refusal = clients.client(Some("shop")).unwrap_err();
        assert_eq!(refusal.code, "app_unusable");
        assert!(refusal.detail.contains("[apps.shop]"), "{refusal:?}");
        assert_eq!(clients.client(None).unwrap_err().code, "unknown_app");
        let mut flags_only = Clients::new(None, None, None, None).unwrap();
        assert!(
            flags_only
                .client(Some("shop"))
                .unwrap_err()
                .detail
                .contains("--config")
        );
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_old_apps() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join("vapid.pem"), key.serialize_pem()).unwrap();
        let path = dir.path().join("push.toml");
        std::fs::write(&path, APP).unwrap();
        let mut clients = Clients::new(None, Some(path.clone()), None, None).unwrap();
        clients.client(Some("shop")).unwrap();
        let opened = |clients: &Clients| -> Vec<String> {
            let file = clients.file.as_ref().unwrap();
            file.clients.keys().cloned().collect()
        };
        assert_eq!(opened(&clients), ["shop"]);
        // Whatever the clock's granularity, a different time is seen as a change.
        let changed = |clients: &mut Clients, text: &str| {
            std::fs::write(&path, text).unwrap();
            clients.file.as_mut().unwrap().modified = None;
        };
        // The key rotated in place: broken, the client stays; valid, a new one.
        let vapid = dir.path().join("vapid.pem");
        let seen = |clients: &Clients| {
            let file = clients.file.as_ref().unwrap();
            file.clients["shop"].files == credentials::fingerprint(file.apps.get("shop").unwrap())
        };
        std::fs::write(&vapid, "not a key").unwrap();
        assert!(!seen(&clients));
        assert!(clients.client(Some("shop")).is_ok(), "the client before");
        assert!(seen(&clients), "tried once, not before every job");
        let rotated = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(&vapid, rotated.serialize_pem()).unwrap();
        assert!(clients.client(Some("shop")).is_ok());
        assert!(seen(&clients));
        changed(&mut clients, "[apps.shop\n");
        assert!(clients.client(Some("shop")).is_ok());
        assert_eq!(opened(&clients), ["shop"], "a broken file changes nothing");
        let blog = "[apps.blog]\nvapid_key = \"vapid.pem\"\nvapid_subject = \"mailto:b@b\"\n";
        changed(&mut clients, &format!("{APP}{blog}"));
        clients.client(Some("blog")).unwrap();
        let mut apps = opened(&clients);
        apps.sort();
        assert_eq!(apps, ["blog", "shop"], "an unchanged app keeps its client");
        changed(
            &mut clients,
            &format!("{}{blog}", APP.replace("a@b", "c@d")),
        );
        assert_eq!(
            clients.client(Some("nothing")).unwrap_err().code,
            "unknown_app"
        );
        assert_eq!(
            opened(&clients),
            ["blog"],
            "a changed app gets a new client"
        );
        changed(&mut clients, blog);
        assert_eq!(
            clients.client(Some("shop")).unwrap_err().code,
            "unknown_app"
        );
    }
}

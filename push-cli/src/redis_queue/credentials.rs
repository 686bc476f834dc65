//! The credential files an app of `push.toml` names, seen by their content: a key, a
//! certificate or a service account rotated in place (same path) is a change even when its
//! size and modification time are the same. A new key of the same kind has the same size, and
//! the tools that install secrets may keep the old time (`cp -p`, `rsync -t`, archives) or
//! write twice within the file system's time granularity; reading a few small files before a
//! job (a batch of devices) costs little beside sending it.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::apps::App;

/// A digest of the contents of the files an app names, a file that cannot be read counted as
/// such. Derived from secrets: compared, never shown (no `Debug`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(u64);

/// The fingerprint of the files `app` names, as they are now.
pub(crate) fn fingerprint(app: &App) -> Fingerprint {
    // SipHash with fixed keys: stable within the process, which is all a comparison needs;
    // a collision would need a writer of the key files, who has the keys anyway.
    let mut hasher = DefaultHasher::new();
    for path in app.files() {
        match std::fs::read(path) {
            Ok(bytes) => {
                hasher.write_u8(1);
                bytes.hash(&mut hasher);
            }
            Err(_) => hasher.write_u8(0),
        }
    }
    Fingerprint(hasher.finish())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn app(dir: &Path) -> App {
        let text = "[apps.shop]\nvapid_key = \"vapid.pem\"\nvapid_subject = \"mailto:a@b\"\nweb_ca = \"ca.pem\"\n";
        let apps = crate::apps::parse(&dir.join("push.toml"), text).unwrap();
        apps.get("shop").unwrap().clone()
    }

    /// Writes `path` with a fixed modification time, as a rotation that keeps it would.
    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
    }

    #[test]
    fn a_file_rewritten_with_the_same_size_and_time_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let vapid = dir.path().join("vapid.pem");
        write(&vapid, "key one");
        write(&dir.path().join("ca.pem"), "ca");
        let first = fingerprint(&app);
        assert!(
            fingerprint(&app) == first,
            "unchanged files, same fingerprint"
        );
        write(&vapid, "key two");
        let second = fingerprint(&app);
        assert!(second != first);
        std::fs::remove_file(&vapid).unwrap();
        let missing = fingerprint(&app);
        assert!(missing != second && missing != first);
        write(&vapid, "");
        assert!(fingerprint(&app) != missing, "empty is not missing");
        write(&vapid, "key one");
        assert!(fingerprint(&app) == first, "the content, not the history");
    }
}

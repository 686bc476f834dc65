//! Replays the fuzz seed corpora (`fuzz/corpus/<target>/`) and any local crash artifacts
//! (`fuzz/artifacts/<target>/`) through the same harnesses the cargo-fuzz targets run, so
//! every input that ever mattered keeps being checked by a plain `cargo test` on stable.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/harness.rs"]
mod harness;

/// The files directly in `dir`, sorted; none when it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every corpus file and artifact of `target` through `harness`; fails when the seed
/// corpus is missing or empty, so a moved corpus cannot silently replay nothing.
fn replay(target: &str, harness: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files_in(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no seed corpus for target {target} in {}",
        fuzz.join("corpus").join(target).display()
    );
    let artifacts = files_in(&fuzz.join("artifacts").join(target));
    for path in corpus.iter().chain(&artifacts) {
        let data = fs::read(path).expect("readable corpus file");
        // Name the input in the failure message: the harness's own assertion follows.
        eprintln!("replaying {}", path.display());
        harness(&data);
    }
}

#[test]
fn frame_corpus() {
    replay("frame", harness::frame);
}

#[test]
fn error_response_corpus() {
    replay("error_response", harness::error_response);
}

#[test]
fn feedback_corpus() {
    replay("feedback", harness::feedback);
}

#[test]
fn gateway_corpus() {
    replay("gateway", harness::gateway);
}

#[test]
fn gcm_response_corpus() {
    replay("gcm_response", harness::gcm_response);
}

#[test]
fn apns_http2_response_corpus() {
    replay("apns_http2_response", harness::apns_http2_response);
}

#[test]
fn fcm_response_corpus() {
    replay("fcm_response", harness::fcm_response);
}

#[test]
fn fcm_token_response_corpus() {
    replay("fcm_token_response", harness::fcm_token_response);
}

#[test]
fn webpush_subscription_corpus() {
    replay("webpush_subscription", harness::webpush_subscription);
}

#[test]
fn webpush_response_corpus() {
    replay("webpush_response", harness::webpush_response);
}

#[test]
fn apns_broadcast_response_corpus() {
    replay("apns_broadcast_response", harness::apns_broadcast_response);
}

#[test]
fn apns_broadcast_request_corpus() {
    replay("apns_broadcast_request", harness::apns_broadcast_request);
}

//! Feedback as JSON Lines: one object per device, written as it arrives.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use push_proto::{Device, DeviceError, Feedback, Platform, Receipt};
use serde::{Deserialize, Serialize};

use crate::devices::{Malformed, Origin};

/// One line: the four fields every line has, then details that only some have.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// `ios`, `android`, or the platform as written in a malformed entry (null if none).
    pub platform: Option<&'a str>,
    /// The token as sent (or as written).
    pub token: &'a str,
    /// The snake_case error code; null when delivered.
    pub error: Option<&'a str>,
    /// The canonical token that replaces `token`, when the provider sent one.
    pub new_token: Option<&'a str>,
    /// The line of the device list a malformed entry came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The rowid of the store a malformed entry came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<i64>,
    /// When the APNs feedback service found the device inactive (UNIX seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u32>,
    /// The error in words (the provider's status, the attempts made, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What an HTTP provider answered: the notification id (`apns-id`, FCM's message name),
    /// its reason string, and APNs' "unregistered since" time (milliseconds since the epoch).
    #[serde(flatten)]
    pub receipt: Option<&'a Receipt>,
}

impl<'a> Line<'a> {
    /// The line for a device's feedback.
    pub fn from_feedback(feedback: &'a Feedback) -> Self {
        Line {
            platform: Some(feedback.device.platform.as_str()),
            token: &feedback.device.token,
            error: feedback.error.as_ref().map(|e| e.code()),
            new_token: feedback.new_token.as_deref(),
            line: None,
            row: None,
            timestamp: None,
            detail: feedback.error.as_ref().map(|e| e.to_string()),
            receipt: Some(&feedback.receipt),
        }
    }

    /// The line for a malformed input entry.
    pub fn from_malformed(malformed: &'a Malformed) -> Self {
        let (line, row) = match malformed.origin {
            Origin::Line(n) => (Some(n), None),
            Origin::Row(n) => (None, Some(n)),
        };
        Line {
            platform: malformed.platform.as_deref(),
            token: &malformed.token,
            error: Some(malformed.code),
            new_token: None,
            line,
            row,
            timestamp: None,
            detail: Some(malformed.detail.clone()),
            receipt: None,
        }
    }
}

/// A line as read back (the fields that act on a store).
#[derive(Deserialize)]
struct Read {
    platform: Option<String>,
    token: String,
    error: Option<String>,
    new_token: Option<String>,
    line: Option<u64>,
    row: Option<i64>,
    id: Option<String>,
    reason: Option<String>,
    unregistered_at: Option<u64>,
}

/// The feedback a device's line (as [`Line::from_feedback`] writes it) stands for; `None`
/// for a malformed entry's line or a line that is not one. An error other than
/// `invalid_device` comes back as [`DeviceError::Rejected`] with its code: only
/// `invalid_device` acts on a store.
pub fn read_feedback(json: &str) -> Option<Feedback> {
    let read: Read = serde_json::from_str(json).ok()?;
    if read.line.is_some() || read.row.is_some() {
        return None;
    }
    let platform: Platform = read.platform?.parse().ok()?;
    let error = read.error.map(|code| match code.as_str() {
        "invalid_device" => DeviceError::InvalidDevice,
        _ => DeviceError::Rejected {
            provider: "push",
            code,
        },
    });
    Some(Feedback {
        device: Device::new(platform, read.token),
        new_token: read.new_token,
        error,
        receipt: Receipt {
            id: read.id,
            reason: read.reason,
            unregistered_at: read.unregistered_at,
        },
    })
}

/// A JSONL sink; writes nothing when created without a destination.
#[derive(Debug)]
pub struct Writer {
    out: Option<BufWriter<Box<dyn WriteDebug>>>,
    name: String,
}

/// `Write` that can be shown in `Debug` output (by name only).
pub trait WriteDebug: Write + Send {}
impl<T: Write + Send> WriteDebug for T {}

impl std::fmt::Debug for dyn WriteDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<output>")
    }
}

impl Writer {
    /// Creates (truncates) `path`, or a sink that drops everything when `path` is `None`.
    pub fn create(path: Option<&Path>) -> Result<Self, String> {
        Writer::open(path, false)
    }

    /// Like [`Writer::create`], appending to `path` when `append`.
    pub fn open(path: Option<&Path>, append: bool) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(Writer {
                out: None,
                name: String::new(),
            });
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
        Ok(Writer {
            out: Some(BufWriter::new(Box::new(file))),
            name: path.display().to_string(),
        })
    }

    /// Writes to standard output.
    pub fn stdout() -> Self {
        Writer {
            out: Some(BufWriter::new(Box::new(io::stdout()))),
            name: "standard output".into(),
        }
    }

    /// Appends one line.
    pub fn write(&mut self, line: &Line<'_>) -> Result<(), String> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        serde_json::to_writer(&mut *out, line)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|error| format!("writing {} failed: {error}", self.name))
    }

    /// Appends one line already serialized (without its newline).
    pub fn write_serialized(&mut self, json: &str) -> Result<(), String> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        out.write_all(json.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|error| format!("writing {} failed: {error}", self.name))
    }

    /// Flushes what is buffered.
    pub fn finish(&mut self) -> Result<(), String> {
        match &mut self.out {
            Some(out) => out
                .flush()
                .map_err(|error| format!("writing {} failed: {error}", self.name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(feedback: &Feedback) -> Option<Feedback> {
        let json = serde_json::to_string(&Line::from_feedback(feedback)).unwrap();
        read_feedback(&json)
    }

    #[test]
    fn a_line_reads_back_as_the_feedback_that_acts_on_a_store() {
        let mut gone = Feedback::failed(
            Device::new(Platform::Ios, "aa".repeat(32)),
            DeviceError::InvalidDevice,
        );
        gone.receipt = Receipt {
            id: Some("id-1".into()),
            reason: Some("Unregistered".into()),
            unregistered_at: Some(1_700_000_000_000),
        };
        assert_eq!(round_trip(&gone), Some(gone));
        let replaced = Feedback::replaced(Device::new(Platform::Android, "old"), "new".into());
        assert_eq!(round_trip(&replaced), Some(replaced));
        let delivered = Feedback::delivered(Device::new(Platform::Web, "sub"));
        assert_eq!(round_trip(&delivered), Some(delivered));
    }

    #[test]
    fn other_errors_keep_their_code_and_malformed_lines_are_skipped() {
        let failed = Feedback::failed(
            Device::new(Platform::Android, "t"),
            DeviceError::Unconfirmed,
        );
        let read = round_trip(&failed).unwrap();
        assert_eq!(read.error.as_ref().map(DeviceError::code), Some("rejected"));
        assert!(!read.error.unwrap().is_invalid_device());
        let malformed = r#"{"platform":"windows","token":"x","error":"unknown_platform","new_token":null,"line":2}"#;
        assert_eq!(read_feedback(malformed), None);
        assert_eq!(read_feedback("not json"), None);
        let unknown = r#"{"platform":"windows","token":"x","error":null,"new_token":null}"#;
        assert_eq!(read_feedback(unknown), None);
    }
}

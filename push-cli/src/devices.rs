//! Device sources: a device-list file (or standard input) read line by line in a blocking
//! thread, feeding a bounded channel. The SQLite source is in [`crate::store`].

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::thread::JoinHandle;

use async_channel::Sender;
use push_proto::webpush::Subscription;
use push_proto::{ApnsToken, Device, GcmToken, Platform, TokenError};

/// Devices waiting between a source and the client at most.
pub const CHANNEL_CAPACITY: usize = 1024;

/// Where a malformed entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A line of a device-list file, numbered from 1.
    Line(u64),
    /// A row of the SQLite store, by rowid.
    Row(i64),
}

/// An entry that cannot be sent: it gets a feedback line and never stops the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Where it came from.
    pub origin: Origin,
    /// The platform as written, if any.
    pub platform: Option<String>,
    /// The token as written (empty when missing).
    pub token: String,
    /// `unknown_platform` or `invalid_token_format`.
    pub code: &'static str,
    /// A human-readable reason.
    pub detail: String,
}

/// One item from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A well-formed device.
    Device(Device),
    /// An entry that is not.
    Malformed(Malformed),
}

/// Checks a platform name and a token; a malformed entry names the reason.
pub fn check(platform: Option<&str>, token: Option<&str>, origin: Origin) -> Input {
    let malformed = |code, detail: String| {
        Input::Malformed(Malformed {
            origin,
            platform: platform.map(str::to_owned),
            token: token.unwrap_or_default().to_owned(),
            code,
            detail,
        })
    };
    let platform = match platform.unwrap_or_default().parse::<Platform>() {
        Ok(platform) => platform,
        Err(error) => return malformed("unknown_platform", error.to_string()),
    };
    let Some(token) = token else {
        return malformed("invalid_token_format", "missing token".into());
    };
    let valid = match platform {
        Platform::Ios => ApnsToken::parse(token).map(|_| ()),
        Platform::Android => GcmToken::parse(token).map(|_| ()),
        Platform::Web => Subscription::from_json(token)
            .map(|_| ())
            .map_err(|error| TokenError::WebSubscription(error.to_string())),
    };
    match valid {
        Ok(()) => Input::Device(Device::new(platform, token)),
        Err(error) => malformed("invalid_token_format", error.to_string()),
    }
}

/// Parses one line of a device list; `None` for blank lines and comments. A `web` line's
/// token is the rest of the line: the subscription JSON, spaces included.
pub fn parse_line(line: &str, number: u64) -> Option<Input> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    if let Some((platform, rest)) = line.split_once(char::is_whitespace)
        && platform.eq_ignore_ascii_case("web")
    {
        return Some(check(
            Some(platform),
            Some(rest.trim()),
            Origin::Line(number),
        ));
    }
    let mut fields = line.split_whitespace();
    let platform = fields.next();
    let token = fields.next();
    if fields.next().is_some() {
        return Some(Input::Malformed(Malformed {
            origin: Origin::Line(number),
            platform: platform.map(str::to_owned),
            token: token.unwrap_or_default().to_owned(),
            code: "invalid_token_format",
            detail: "more than two fields on the line".into(),
        }));
    }
    Some(check(platform, token, Origin::Line(number)))
}

/// Opens `path` (`-` for standard input) and starts a thread that sends its entries into
/// `sender`, one at a time; the thread ends at the end of input or when the receiver is gone.
pub fn spawn_file(
    path: &Path,
    sender: Sender<Input>,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let reader: Box<dyn BufRead + Send> = if path == Path::new("-") {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = File::open(path)
            .map_err(|error| format!("cannot open the device list {}: {error}", path.display()))?;
        Box::new(BufReader::with_capacity(64 * 1024, file))
    };
    let name = path.display().to_string();
    std::thread::Builder::new()
        .name("push-devices".into())
        .spawn(move || read_lines(reader, &name, &sender))
        .map_err(|error| format!("cannot start the reader thread: {error}"))
}

fn read_lines(
    mut reader: Box<dyn BufRead + Send>,
    name: &str,
    sender: &Sender<Input>,
) -> Result<(), String> {
    let mut buffer = Vec::new();
    let mut number = 0u64;
    loop {
        buffer.clear();
        let n = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|error| format!("reading {name} failed: {error}"))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let input = match std::str::from_utf8(&buffer) {
            Ok(line) => parse_line(line, number),
            Err(_) => Some(Input::Malformed(Malformed {
                origin: Origin::Line(number),
                platform: None,
                token: String::from_utf8_lossy(&buffer).trim().to_owned(),
                code: "invalid_token_format",
                detail: "the line is not UTF-8".into(),
            })),
        };
        if let Some(input) = input
            && sender.send_blocking(input).is_err()
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_line_takes_the_rest_of_the_line_as_its_subscription() {
        let json = r#"{"endpoint": "https://push.example.net/p/1", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}"#;
        assert_eq!(
            parse_line(&format!("web  {json} \n"), 1),
            Some(Input::Device(Device::web(json)))
        );
        let Some(Input::Malformed(bad)) = parse_line(r#"web {"endpoint": "http://x/1"}"#, 2) else {
            panic!("a bad subscription is malformed");
        };
        assert_eq!(bad.code, "invalid_token_format");
        assert_eq!(bad.platform.as_deref(), Some("web"));
    }

    #[test]
    fn lines_are_classified() {
        let token = "ab".repeat(32);
        assert_eq!(parse_line("  # comment", 1), None);
        assert_eq!(parse_line("   ", 2), None);
        assert_eq!(
            parse_line(&format!("ios {token}\n"), 3),
            Some(Input::Device(Device::ios(token.clone())))
        );
        assert_eq!(
            parse_line("android APA91b-x", 4),
            Some(Input::Device(Device::android("APA91b-x")))
        );
        let code = |line: &str| match parse_line(line, 5) {
            Some(Input::Malformed(m)) => m.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("windows abc"), "unknown_platform");
        assert_eq!(code("ios abc"), "invalid_token_format");
        assert_eq!(code("ios"), "invalid_token_format");
        assert_eq!(code("android a b"), "invalid_token_format");
    }
}

//! One job of the queue: its devices not yet recorded are sent with the client, then their
//! results are written and the job acknowledged in one atomic script.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use futures_lite::{StreamExt, future};
use push_smol::{Client, Device, Feedback, Payload, Platform};
use redis::aio::MultiplexedConnection;

use super::conn::{Fault, Server};
use super::keys;
use crate::devices::{self, Input};
use crate::jsonl::Line;
use crate::metrics::Timer;

/// Writes the results of a job and acknowledges it, atomically; a device already recorded
/// keeps its first result (a job taken over from a worker that was only slow).
const RECORD: &str = include_str!("record.lua");

/// One device's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The token sent.
    pub token: String,
    /// `delivered` or the snake_case error code.
    pub outcome: String,
    /// The JSONL line `push send --feedback` writes for it, empty when it writes none.
    pub line: String,
}

impl Outcome {
    /// The result of a feedback.
    pub fn of(feedback: &Feedback) -> Result<Outcome, String> {
        let outcome = feedback
            .error
            .as_ref()
            .map_or("delivered", |error| error.code())
            .to_owned();
        // As `push send`: the binary gateway acknowledges nothing, only its failures get a
        // line; HTTP providers answer every notification.
        let line = if feedback.device.platform == Platform::Android
            || feedback.error.is_some()
            || feedback.receipt.id.is_some()
        {
            serde_json::to_string(&Line::from_feedback(feedback)).map_err(|e| e.to_string())?
        } else {
            String::new()
        };
        Ok(Outcome {
            token: feedback.device.token.clone(),
            outcome,
            line,
        })
    }
}

/// The devices of a job's `devices` field (lines "platform token"), each token once (a token
/// listed twice gets one result); entries that are not well-formed devices are left out
/// (`push enqueue` records those itself).
pub fn devices_of(text: &str) -> Vec<Device> {
    let mut seen = HashSet::new();
    text.lines()
        .filter_map(|line| match devices::parse_line(line, 0) {
            Some(Input::Device(device)) => Some(device),
            _ => None,
        })
        .filter(|device| seen.insert(device.token.clone()))
        .collect()
}

/// The devices of `devices` that have no result in `campaign` yet.
pub async fn not_done(
    server: &Server,
    conn: &mut MultiplexedConnection,
    campaign: u64,
    devices: Vec<Device>,
) -> Result<Vec<Device>, Fault> {
    if devices.is_empty() {
        return Ok(devices);
    }
    let mut command = redis::cmd("SMISMEMBER");
    command.arg(keys::done(campaign));
    for device in &devices {
        command.arg(&device.token);
    }
    let done: Vec<bool> = command
        .query_async(conn)
        .await
        .map_err(|e| server.fault("cannot read the devices done", &e))?;
    Ok(devices
        .into_iter()
        .zip(done)
        .filter_map(|(device, done)| (!done).then_some(device))
        .collect())
}

/// Sends `payload` to `devices` and waits for every result. Fails on a client-wide fatal
/// error (TLS, authentication, configuration): the job is then left for another worker.
/// `timer`, when given, counts and times each result.
pub async fn send(
    client: &Client,
    payload: Payload,
    devices: Vec<Device>,
    timer: Option<Timer>,
) -> Result<Vec<Outcome>, String> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let timer = RefCell::new(timer);
    let mut session = client.send(payload);
    let mut feedbacks = session.feedbacks();
    let push = async {
        for device in devices {
            if let Some(timer) = timer.borrow_mut().as_mut() {
                timer.sent(device.token.clone());
            }
            session.push(device).await.map_err(|e| e.to_string())?;
        }
        session.finish().await.map_err(|e| e.to_string())
    };
    let read = async {
        let mut outcomes = Vec::new();
        while let Some(feedback) = feedbacks.next().await {
            if let Some(timer) = timer.borrow_mut().as_mut() {
                timer.feedback(&feedback);
            }
            outcomes.push(Outcome::of(&feedback)?);
        }
        Ok::<_, String>(outcomes)
    };
    let (report, outcomes) = future::zip(push, read).await;
    let report = report?;
    if let Some(error) = report.errors.iter().find(|e| e.is_fatal()) {
        return Err(error.to_string());
    }
    for error in &report.errors {
        eprintln!("push: warning: {error}");
    }
    outcomes
}

/// The results of devices that cannot be sent (the campaign's app is unknown or
/// unusable): `code` each, with `detail`.
pub fn refused(devices: &[Device], code: &str, detail: &str) -> Result<Vec<Outcome>, String> {
    devices
        .iter()
        .map(|device| {
            let line = Line {
                platform: Some(device.platform.as_str()),
                token: &device.token,
                error: Some(code),
                new_token: None,
                line: None,
                row: None,
                timestamp: None,
                detail: Some(detail.to_owned()),
                receipt: None,
            };
            Ok(Outcome {
                token: device.token.clone(),
                outcome: code.to_owned(),
                line: serde_json::to_string(&line).map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

/// Writes `outcomes` (of distinct tokens) to `campaign`'s result stream and acknowledges
/// job `job`, in one atomic script; returns how many results were new.
pub async fn record(
    server: &Server,
    conn: &mut MultiplexedConnection,
    campaign: u64,
    job: &str,
    outcomes: &[Outcome],
) -> Result<u64, Fault> {
    let mut command = redis::cmd("EVAL");
    command
        .arg(RECORD)
        .arg(5)
        .arg(keys::done(campaign))
        .arg(keys::results(campaign))
        .arg(keys::outcomes(campaign))
        .arg(keys::JOBS)
        .arg(keys::campaign(campaign));
    for arg in record_args(job, outcomes) {
        command.arg(arg);
    }
    command
        .query_async(conn)
        .await
        .map_err(|e| server.fault("cannot record a job's results", &e))
}

/// The arguments of [`RECORD`] after its keys: group, job id, the tokens, outcomes and lines
/// packed (one line per device each), the number of distinct outcomes, each outcome with
/// its count, then each token.
fn record_args(job: &str, outcomes: &[Outcome]) -> Vec<String> {
    let packed =
        |field: fn(&Outcome) -> &str| outcomes.iter().map(field).collect::<Vec<_>>().join("\n");
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome.outcome.as_str()).or_default() += 1;
    }
    let mut args = vec![
        keys::GROUP.to_owned(),
        job.to_owned(),
        packed(|o| &o.token),
        packed(|o| &o.outcome),
        packed(|o| &o.line),
        counts.len().to_string(),
    ];
    for (outcome, count) in counts {
        args.push(outcome.to_owned());
        args.push(count.to_string());
    }
    args.extend(outcomes.iter().map(|o| o.token.clone()));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_lists_its_devices_once_each() {
        let ios = "ab".repeat(32);
        let text = format!("ios {ios}\nandroid tok-1\nwindows x\nandroid tok-1\n");
        assert_eq!(
            devices_of(&text),
            vec![Device::ios(ios), Device::android("tok-1")]
        );
    }

    #[test]
    fn record_packs_the_results_and_counts_the_outcomes() {
        let outcome = |token: &str, outcome: &str, line: &str| Outcome {
            token: token.into(),
            outcome: outcome.into(),
            line: line.into(),
        };
        let args = record_args(
            "1-0",
            &[
                outcome("a", "delivered", ""),
                outcome("b", "invalid_device", "{\"token\":\"b\"}"),
                outcome("c", "delivered", ""),
            ],
        );
        let want = [
            keys::GROUP,
            "1-0",
            "a\nb\nc",
            "delivered\ninvalid_device\ndelivered",
            "\n{\"token\":\"b\"}\n",
            "2",
            "delivered",
            "2",
            "invalid_device",
            "1",
            "a",
            "b",
            "c",
        ];
        assert_eq!(args, want);
    }
}

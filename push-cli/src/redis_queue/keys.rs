//! The Redis keys of the queue, in one place.

/// The stream of jobs, every campaign's: fields `campaign` (the id) and `devices` (lines
/// "platform token").
pub const JOBS: &str = "push:jobs";

/// The consumer group the workers read [`JOBS`] through.
pub const GROUP: &str = "push-workers";

/// The counter that numbers campaigns.
pub const CAMPAIGNS: &str = "push:campaigns";

/// A campaign's hash: the notification, then `queued` and `jobs` once enqueued.
pub fn campaign(id: u64) -> String {
    format!("push:campaign:{id}")
}

/// A campaign's result stream: one entry per job recorded (or per malformed input entry),
/// with fields `tokens`, `outcomes` and `lines`, one line per result each: the token, its
/// outcome, its JSONL line (an empty line when `push send --feedback` would not write one).
pub fn results(id: u64) -> String {
    format!("push:results:{id}")
}

/// The set of a campaign's tokens that have their result: never sent again.
pub fn done(id: u64) -> String {
    format!("push:done:{id}")
}

/// A campaign's results counted by outcome (`delivered` or the error code).
pub fn outcomes(id: u64) -> String {
    format!("push:outcomes:{id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_name_their_campaign() {
        assert_eq!(super::campaign(7), "push:campaign:7");
        assert_eq!(super::results(7), "push:results:7");
        assert_eq!(super::done(7), "push:done:7");
        assert_eq!(super::outcomes(7), "push:outcomes:7");
    }
}

//! CPU time of the client side of `push bench`: the mock servers run in this process on their
//! own threads (named `mock-…` by push-mock), so the process total is not what the client
//! spent. Read from `/proc/self/stat` and `/proc/self/task/*/stat` (Linux only; elsewhere every
//! figure is zero).

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks per second of the `utime`/`stime` fields in `/proc`: `USER_HZ`, which the
/// kernel fixes at 100 for its user interface on every architecture Linux ships
/// (`sysconf(_SC_CLK_TCK)`); hardcoded because this crate forbids the `unsafe` a libc call
/// would need.
const TICKS_PER_SECOND: u64 = 100;

/// What push-mock names its server threads (`std::thread::Builder::name`): `mock-apns-http2`,
/// `mock-fcm`, `mock-oauth`, `mock-apns-gateway` (cut to 15 bytes by the kernel), `mock-gcm`.
const MOCK_THREAD_PREFIX: &str = "mock-";

/// One reading of the process's CPU time and of its mock threads'.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    /// utime + stime of the whole process, threads that ended included, in ticks.
    process: u64,
    /// utime + stime of each live mock thread, by thread id, in ticks.
    mock_threads: HashMap<u32, u64>,
}

/// CPU spent between two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUse {
    /// Every thread but the mock servers': the client's executor threads, the bench's own
    /// threads and the async-io reactor thread.
    pub client: Duration,
    /// The whole process, mocks included.
    pub process: Duration,
}

impl CpuUse {
    /// Client CPU per item, in microseconds.
    pub fn client_us_per(&self, items: u64) -> f64 {
        per_item_us(self.client, items)
    }

    /// Process CPU per item, in microseconds.
    pub fn process_us_per(&self, items: u64) -> f64 {
        per_item_us(self.process, items)
    }
}

fn per_item_us(time: Duration, items: u64) -> f64 {
    time.as_secs_f64() * 1e6 / items.max(1) as f64
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks.saturating_mul(1000) / TICKS_PER_SECOND)
}

impl CpuSnapshot {
    /// Reads the counters now.
    pub fn take() -> CpuSnapshot {
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| parse_stat(&stat).map(|(_, ticks)| ticks))
            .unwrap_or(0);
        let mut mock_threads = HashMap::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue; // the thread ended meanwhile
                };
                if let Some((name, ticks)) = parse_stat(&stat)
                    && name.starts_with(MOCK_THREAD_PREFIX)
                {
                    mock_threads.insert(tid, ticks);
                }
            }
        }
        CpuSnapshot {
            process,
            mock_threads,
        }
    }

    /// CPU spent from `self` to `later`. The client's share is the process's minus the mock
    /// threads' (threads that started meanwhile count from zero). That is the sum over the
    /// threads that are not mock threads, including those that ended between the snapshots;
    /// a mock thread must live across both to be taken out (the bench drops its mocks only
    /// after the closing snapshot).
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let process = later.process.saturating_sub(self.process);
        let mocks: u64 = later
            .mock_threads
            .iter()
            .map(|(tid, ticks)| {
                ticks.saturating_sub(self.mock_threads.get(tid).copied().unwrap_or(0))
            })
            .sum();
        CpuUse {
            client: ticks_to_duration(process.saturating_sub(mocks)),
            process: ticks_to_duration(process),
        }
    }
}

/// The thread or process name and utime + stime (ticks) of a `/proc/…/stat` line. The name
/// is between the first `(` and the last `)` (it may hold spaces and parentheses); `utime`
/// and `stime` are fields 14 and 15, the 12th and 13th after the name.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_name() {
        let line = "4242 (mock-x) (y)) S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("mock-x) (y)", 287)));
        assert_eq!(parse_stat("12 (short) S 1 2"), None);
    }

    #[test]
    fn the_client_is_the_process_minus_the_mock_threads() {
        let before = CpuSnapshot {
            process: 100,
            mock_threads: HashMap::from([(7, 40)]),
        };
        let after = CpuSnapshot {
            process: 400,
            // Thread 7 spent 60 ticks, thread 9 started meanwhile and spent 90.
            mock_threads: HashMap::from([(7, 100), (9, 90)]),
        };
        let used = before.until(&after);
        assert_eq!(used.process, Duration::from_secs(3));
        assert_eq!(used.client, Duration::from_millis(1500));
        assert_eq!(used.client_us_per(1500), 1000.0);
    }

    #[test]
    fn this_process_spends_cpu() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let before = CpuSnapshot::take();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        let used = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let used = before.until(&CpuSnapshot::take());
            if used.process >= Duration::from_millis(30) || std::time::Instant::now() > deadline {
                break used;
            }
        };
        assert!(used.process >= Duration::from_millis(30), "{used:?}");
        assert!(used.client <= used.process, "{used:?}");
    }
}

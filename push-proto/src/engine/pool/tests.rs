//! The connection policy alone: dials, scale-out, backoff, giving up, stalls, GOAWAY, idle
//! connections and the pool's deadlines.

use std::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn config() -> PoolConfig {
    PoolConfig {
        min_connections: 1,
        max_connections: 3,
        max_streams_per_connection: 1000,
        initial_dial_backoff: 100 * MS,
        max_dial_backoff: 1000 * MS,
        max_failed_dials: 3,
        stall_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    }
}

/// Dials and opens a connection with `limit` streams.
fn open(pool: &mut Pool, limit: u32, now: Instant) -> ConnId {
    let conn = pool.poll_dial(now, 1).expect("a dial");
    pool.handle_connected(conn, limit, now);
    conn
}

/// Keeps every stream of the open connections busy while requests wait, each stream
/// answered 10 ms after it was sent (a server bound by its round trip), until the pool knows
/// the rate with them and may grow.
fn measure(pool: &mut Pool, now: &mut Instant) {
    for _ in 0..100_000 {
        pool.update(*now, 1);
        if pool.scaling.may_grow(pool.live()) {
            return;
        }
        let busy = pool.conns.iter().find(|conn| conn.in_flight > 0);
        let conn = busy.expect("a busy stream").id;
        *now += MS * 10 / pool.in_flight();
        pool.release(conn, true, *now);
        assert_eq!(pool.pick(), Some(conn));
    }
    panic!("the pool never measured its rate");
}

#[test]
fn dials_only_when_requests_wait() {
    let now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    assert_eq!(pool.poll_dial(now, 0), None);
    let conn = pool.poll_dial(now, 5).unwrap();
    assert_eq!(
        pool.poll_dial(now, 5),
        None,
        "one dial at a time above the minimum"
    );
    assert_eq!((pool.live(), pool.dials()), (1, 1));
    pool.handle_connected(conn, 10, now);
    assert_eq!(pool.free_streams(), 10);
    assert_eq!(pool.poll_dial(now, 5), None, "streams are free");
}

#[test]
fn min_connections_are_dialed_together_and_max_bounds_scale_out() {
    let now = Instant::now();
    let mut pool = Pool::new(
        PoolConfig {
            min_connections: 2,
            ..config()
        },
        0,
    );
    let a = pool.poll_dial(now, 1).unwrap();
    let b = pool.poll_dial(now, 1).unwrap();
    assert_eq!(pool.poll_dial(now, 1), None);
    pool.handle_connected(a, 1, now);
    pool.handle_connected(b, 1, now);
    assert!(pool.pick().is_some() && pool.pick().is_some());
    assert_eq!(pool.pick(), None);
    assert_eq!(
        pool.poll_dial(now, 1),
        None,
        "the rate with two is not known yet"
    );
    let mut now = now;
    measure(&mut pool, &mut now);
    // Every stream busy and requests wait: one more, up to max_connections (3).
    let c = pool.poll_dial(now, 1).unwrap();
    pool.handle_connected(c, 1, now);
    assert_eq!(pool.pick(), Some(c));
    assert_eq!(pool.poll_dial(now, 1), None, "max_connections");
    assert_eq!(pool.live(), 3);
}

#[test]
fn scale_out_only_when_every_stream_is_busy_and_never_towards_a_paused_connection() {
    let now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let a = open(&mut pool, 2, now);
    assert_eq!(pool.pick(), Some(a));
    assert_eq!(pool.poll_dial(now, 1), None, "one stream still free");
    assert_eq!(pool.pick(), Some(a));
    let mut now = now;
    measure(&mut pool, &mut now);
    let b = pool.poll_dial(now, 1).expect("all busy: scale out");
    assert_eq!(pool.poll_dial(now, 1), None, "one dial in flight at a time");
    pool.handle_connected(b, 0, now);
    // b allows 0 streams: a pause, not load.
    assert_eq!(pool.poll_dial(now, 1), None);
    pool.handle_max_streams(b, 3);
    assert_eq!(pool.free_streams(), 3);
    // The least busy connection is picked.
    assert_eq!(pool.pick(), Some(b));
    assert_eq!(pool.in_flight(), 3);
}

#[test]
fn the_stream_limit_is_capped_per_connection() {
    let now = Instant::now();
    let mut pool = Pool::new(
        PoolConfig {
            max_streams_per_connection: 4,
            ..config()
        },
        0,
    );
    let a = open(&mut pool, 100, now);
    assert_eq!(pool.free_streams(), 4);
    pool.handle_max_streams(a, 2);
    assert_eq!(pool.free_streams(), 2);
    pool.handle_max_streams(a, u32::MAX);
    assert_eq!(pool.free_streams(), 4);
}

#[test]
fn failed_dials_back_off_doubling_then_give_up() {
    let start = Instant::now();
    let mut pool = Pool::new(config(), 7);
    let mut now = start;
    let mut delays = Vec::new();
    for failure in 1..=3 {
        let conn = pool.poll_dial(now, 1).expect("a dial");
        pool.handle_dial_failed(conn, "refused", false, now);
        if failure < 3 {
            assert_eq!(pool.take_give_up(), None);
            let at = pool.poll_timeout(1).unwrap();
            assert_eq!(pool.poll_dial(at - MS, 1), None, "backing off");
            assert_eq!(pool.poll_timeout(0), None, "no wake-up when nothing waits");
            delays.push(at - now);
            now = at;
        }
    }
    // Equal jitter: the n-th delay is within [ceiling/2, ceiling], ceiling doubling.
    assert!(delays[0] >= 50 * MS && delays[0] <= 100 * MS, "{delays:?}");
    assert!(delays[1] >= 100 * MS && delays[1] <= 200 * MS, "{delays:?}");
    assert_eq!(
        pool.take_give_up(),
        Some(GiveUp::Unreachable("refused".into()))
    );
    assert_eq!(pool.take_give_up(), None, "taken once");
}

#[test]
fn a_fatal_dial_error_gives_up_at_once() {
    let now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let conn = pool.poll_dial(now, 1).unwrap();
    pool.handle_dial_failed(conn, "untrusted certificate", true, now);
    assert_eq!(
        pool.take_give_up(),
        Some(GiveUp::Unreachable("untrusted certificate".into()))
    );
}

#[test]
fn a_connection_closing_without_any_answer_counts_as_a_failed_dial() {
    let mut now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    for _ in 0..3 {
        let conn = open(&mut pool, 10, now);
        assert_eq!(pool.pick(), Some(conn));
        pool.release(conn, false, now);
        pool.handle_closed(conn, now);
        now = pool.poll_timeout(1).unwrap_or(now);
    }
    assert_eq!(
        pool.take_give_up(),
        Some(GiveUp::Unreachable(
            "the connection closed before answering any request".into()
        ))
    );
}

#[test]
fn a_response_resets_the_failure_count() {
    let mut now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    for _ in 0..2 {
        let conn = pool.poll_dial(now, 1).unwrap();
        pool.handle_dial_failed(conn, "refused", false, now);
        now = pool.poll_timeout(1).unwrap();
    }
    let conn = open(&mut pool, 10, now);
    pool.pick();
    pool.release(conn, true, now);
    assert_eq!(pool.poll_timeout(1), None, "no backoff left");
    // A closed connection that answered is not a failure; the count starts again.
    pool.handle_closed(conn, now);
    for _ in 0..2 {
        let conn = pool.poll_dial(now, 1).unwrap();
        pool.handle_dial_failed(conn, "refused", false, now);
        now = pool.poll_timeout(1).unwrap();
    }
    assert_eq!(pool.take_give_up(), None, "2 in a row, not 4");
}

#[test]
fn every_connection_allowing_zero_streams_stalls_then_gives_up() {
    let start = Instant::now();
    let mut pool = Pool::new(config(), 0);
    open(&mut pool, 0, start);
    pool.update(start, 1);
    let deadline = start + Duration::from_secs(10);
    assert_eq!(pool.poll_timeout(1), Some(deadline));
    pool.update(deadline - MS, 1);
    assert_eq!(pool.take_give_up(), None);
    pool.update(deadline, 1);
    assert_eq!(pool.take_give_up(), Some(GiveUp::Stalled));
    // Nothing waiting: no stall.
    pool.update(deadline, 0);
    assert_eq!(pool.poll_timeout(0), None);
}

#[test]
fn a_limit_raised_in_time_ends_the_stall() {
    let start = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let conn = open(&mut pool, 0, start);
    pool.update(start, 1);
    pool.handle_max_streams(conn, 1);
    pool.update(start + Duration::from_secs(5), 1);
    pool.handle_max_streams(conn, 0);
    pool.update(start + Duration::from_secs(11), 1);
    assert_eq!(pool.take_give_up(), None, "the timer started again at 11 s");
    assert_eq!(pool.poll_timeout(1), Some(start + Duration::from_secs(21)));
}

#[test]
fn goaway_drains_the_connection() {
    let now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let a = open(&mut pool, 10, now);
    assert_eq!(pool.pick(), Some(a));
    pool.handle_goaway(a);
    assert_eq!((pool.free_streams(), pool.live()), (0, 0));
    assert_eq!(pool.poll_close(now), None, "a stream still runs");
    // A new connection for the waiting requests.
    let b = pool.poll_dial(now, 1).unwrap();
    assert_ne!(a, b);
    pool.release(a, true, now);
    assert_eq!(pool.poll_close(now), Some(a));
    assert!(!pool.contains(a));
    // The transport's Closed after our Close changes nothing.
    pool.handle_closed(a, now);
    assert_eq!(pool.take_give_up(), None);
}

#[test]
fn a_stream_that_could_not_be_opened_drains_the_connection() {
    let now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let a = open(&mut pool, 10, now);
    assert_eq!(pool.pick(), Some(a));
    assert_eq!(pool.pick(), Some(a));
    pool.release(a, false, now);
    pool.handle_stream_end(a, &StreamEnd::NotSent);
    // Not picked again (its resend would bounce off the same connection), a new one dialed.
    assert_eq!((pool.free_streams(), pool.live()), (0, 0));
    assert_eq!(pool.pick(), None);
    assert!(pool.poll_dial(now, 1).is_some());
}

#[test]
fn a_connection_that_refused_a_stream_is_picked_last_until_it_answers() {
    let now = Instant::now();
    let two = PoolConfig {
        min_connections: 2,
        ..config()
    };
    let mut pool = Pool::new(two, 0);
    let a = open(&mut pool, 10, now);
    let b = pool.poll_dial(now, 1).expect("a second dial");
    pool.handle_connected(b, 10, now);
    assert_eq!(pool.pick(), Some(a));
    pool.release(a, false, now);
    pool.handle_stream_end(a, &StreamEnd::Refused);
    // b is busier than a from here on, yet takes the streams while a has refused.
    for _ in 0..10 {
        assert_eq!(pool.pick(), Some(b));
    }
    assert_eq!(pool.pick(), Some(a), "a when nothing else has room");
    // An answer on a makes it an ordinary choice again.
    pool.release(a, true, now);
    pool.release(b, true, now);
    assert_eq!(pool.pick(), Some(a));
    // Other ends change nothing.
    pool.handle_stream_end(a, &StreamEnd::TimedOut);
    assert_eq!(pool.live(), 2);
}

#[test]
fn idle_extra_connections_are_closed_after_idle_timeout() {
    let start = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let a = open(&mut pool, 1, start);
    pool.pick();
    let mut now = start;
    measure(&mut pool, &mut now);
    let b = open(&mut pool, 1, now);
    pool.pick();
    let later = start + Duration::from_secs(5);
    pool.release(a, true, later);
    pool.release(b, true, later);
    let idle = later + Duration::from_secs(60);
    assert_eq!(pool.poll_timeout(0), Some(idle));
    assert_eq!(pool.poll_close(idle - MS), None);
    let closed = pool.poll_close(idle).unwrap();
    assert!(closed == a || closed == b);
    // The minimum stays.
    assert_eq!(pool.poll_close(idle + Duration::from_secs(600)), None);
    assert_eq!(pool.poll_timeout(0), None);
    assert_eq!(pool.live(), 1);
}

/// Regression: after a failed dial the backoff deadline stayed set once it had passed, so
/// while requests waited for busy streams `poll_timeout` kept returning an instant in the
/// past and a driver sleeping until it spun.
#[test]
fn a_passed_dial_backoff_is_not_a_deadline() {
    let start = Instant::now();
    let mut pool = Pool::new(
        PoolConfig {
            max_connections: 1,
            ..config()
        },
        0,
    );
    let conn = pool.poll_dial(start, 1).unwrap();
    pool.handle_dial_failed(conn, "refused", false, start);
    let at = pool.poll_timeout(1).unwrap();
    let conn = open(&mut pool, 1, at);
    pool.pick();
    // Every stream busy, max_connections reached, one request waits.
    pool.update(at, 1);
    assert_eq!(pool.poll_dial(at, 1), None);
    assert!(
        pool.poll_timeout(1).is_none_or(|deadline| deadline > at),
        "{:?} is not after {at:?}",
        pool.poll_timeout(1)
    );
    pool.release(conn, true, at);
}

/// Regression: a connection that got GOAWAY and that the engine closed itself once drained
/// was removed before the transport's `Closed`, so a server answering every connection with
/// GOAWAY(0) never counted as a failed dial and was dialed again at once, forever.
#[test]
fn a_drained_connection_that_answered_nothing_counts_as_a_failed_dial() {
    let mut now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    for _ in 0..3 {
        let conn = open(&mut pool, 10, now);
        pool.pick();
        pool.handle_goaway(conn);
        pool.release(conn, false, now);
        assert_eq!(pool.poll_close(now), Some(conn));
        pool.handle_closed(conn, now);
        now = pool.poll_timeout(1).expect("a dial backoff");
    }
    assert!(matches!(pool.take_give_up(), Some(GiveUp::Unreachable(_))));
}

/// Answers one busy stream every `per_answer` and sends another wherever a stream is free,
/// with requests waiting, until `done` holds.
fn answer_until(
    pool: &mut Pool,
    now: &mut Instant,
    per_answer: Duration,
    done: impl Fn(&Pool) -> bool,
) {
    for _ in 0..100_000 {
        pool.update(*now, 1);
        if done(pool) {
            return;
        }
        let busy = pool.conns.iter().find(|conn| conn.in_flight > 0);
        let conn = busy.expect("a busy stream").id;
        *now += per_answer;
        pool.release(conn, true, *now);
        while pool.pick().is_some() {}
    }
    panic!("never done");
}

fn parked(pool: &Pool) -> Vec<ConnId> {
    let parked = pool
        .conns
        .iter()
        .filter(|c| matches!(c.state, State::Parked { .. }));
    parked.map(|conn| conn.id).collect()
}

#[test]
fn a_connection_that_does_not_raise_the_rate_is_parked_then_closed_once_idle() {
    let mut now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let a = open(&mut pool, 2, now);
    while pool.pick().is_some() {}
    // Bound by CPU: one answer per millisecond, however many connections.
    let known = |pool: &Pool| pool.scaling.may_grow(pool.live());
    answer_until(&mut pool, &mut now, MS, known);
    let b = open(&mut pool, 2, now);
    while pool.pick().is_some() {}
    answer_until(&mut pool, &mut now, MS, |pool| !parked(pool).is_empty());
    assert_eq!(parked(&pool), [b], "the newest one");
    assert_eq!(pool.live(), 2);
    let a_busy = pool
        .conns
        .iter()
        .find(|conn| conn.id == a)
        .unwrap()
        .in_flight;
    assert_eq!(pool.free_streams(), 2 - a_busy, "only a's streams count");
    while pool.pick().is_some() {}
    assert_eq!(pool.poll_dial(now, 1), None, "no more growth");
    // b's streams end; it takes no new ones, and is closed once idle.
    for _ in 0..2 {
        if pool.conns.iter().any(|c| c.id == b && c.in_flight > 0) {
            pool.release(b, true, now);
        }
    }
    assert_eq!(pool.pick(), None, "a is busy and b parked");
    let idle = now + Duration::from_secs(60);
    assert_eq!(pool.poll_timeout(1), Some(idle));
    assert_eq!(pool.poll_close(idle), Some(b));
    assert_eq!(pool.live(), 1);
    assert!(pool.contains(a));
}

#[test]
fn a_parked_connection_is_used_again_when_another_one_ends() {
    let mut now = Instant::now();
    let mut pool = Pool::new(config(), 0);
    let a = open(&mut pool, 2, now);
    while pool.pick().is_some() {}
    // Bound by CPU: one answer per millisecond, however many connections.
    let known = |pool: &Pool| pool.scaling.may_grow(pool.live());
    answer_until(&mut pool, &mut now, MS, known);
    let b = open(&mut pool, 2, now);
    while pool.pick().is_some() {}
    answer_until(&mut pool, &mut now, MS, |pool| !parked(pool).is_empty());
    assert_eq!(parked(&pool), [b]);
    pool.handle_goaway(a);
    assert!(parked(&pool).is_empty());
    for _ in 0..2 {
        pool.release(b, true, now);
    }
    assert_eq!(pool.pick(), Some(b));
}

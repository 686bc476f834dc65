//! Web Push in the dispatcher: one engine sender per push-service origin, in a bounded table.
//! An origin's sender is made for its first subscription and dropped once it has had no work
//! for a while; subscriptions of a new origin wait while the table is full.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{HttpSender, SessionId, Tag};
use crate::engine::{self, ConfigError};
use crate::feedback::Receipt;
use crate::jose::unix_time;
use crate::outcome::{Full, Outcome};
use crate::webpush::{self, Message, Origin, Subscription, Vapid, VapidCredential};

/// Settings of Web Push in the dispatcher ([`Push::with_webpush`](super::Push::with_webpush)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebPushSettings {
    /// The engine's settings of every origin's sender (by default the engine's, with
    /// `max_pending` 10,000 per origin); `max_pending` also bounds the subscriptions waiting
    /// for a free origin.
    pub engine: webpush::Config,
    /// The TTL, urgency, topic and payload form of every session's message.
    pub options: webpush::Options,
    /// Most origins with a sender (and connections) at once (default 16).
    pub max_origins: usize,
    /// How long an origin's sender stays without queued or in-flight work before it and its
    /// connections are dropped (default 60 s; at once when other origins wait for room).
    pub idle_timeout: Duration,
}

/// Messages each origin's sender queues by default. Far below the engine's general default:
/// a queued Web Push entry holds its parsed subscription and its device's subscription JSON
/// (about 800 bytes), and every origin has its own queue, so 100,000 each would let a large
/// send hold hundreds of megabytes. 10,000 keeps an origin's connections fed (at most 1,000
/// streams on each of a few connections) while the rest waits in the caller's session.
const DEFAULT_MAX_PENDING_PER_ORIGIN: usize = 10_000;

impl Default for WebPushSettings {
    fn default() -> Self {
        WebPushSettings {
            engine: webpush::Config {
                max_pending: DEFAULT_MAX_PENDING_PER_ORIGIN,
                ..webpush::Config::default()
            },
            options: webpush::Options::new(),
            max_origins: 16,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl WebPushSettings {
    /// The defaults with `options` for every message.
    pub fn new(options: webpush::Options) -> Self {
        WebPushSettings {
            options,
            ..WebPushSettings::default()
        }
    }

    /// Sets [`engine`](Self::engine).
    pub fn engine(mut self, engine: webpush::Config) -> Self {
        self.engine = engine;
        self
    }

    /// Sets [`max_origins`](Self::max_origins).
    pub fn max_origins(mut self, origins: usize) -> Self {
        self.max_origins = origins;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }
}

/// One origin's sender and its route number.
struct Slot {
    route: u64,
    origin: Origin,
    sender: webpush::Sender<Tag>,
    /// The last time the core handed it work, an input or an action.
    last_active: Instant,
}

/// What a web route asks of the driver.
// Moved straight into an `Action`, never stored.
#[allow(clippy::large_enum_variant)]
pub(super) enum WebAction {
    /// Perform this engine action on the route's connections.
    Http(u64, engine::Action),
    /// The route's sender is gone: close its connections.
    Closed(u64),
}

/// The Web Push routes of a dispatcher.
pub(super) struct Web {
    vapid: Vapid,
    settings: WebPushSettings,
    /// One reading of the core's clock and the wall clock, for the VAPID tokens' `exp`.
    wall: (Instant, u64),
    slots: Vec<Slot>,
    next_route: u64,
    /// Subscriptions of origins that found the table full, in arrival order.
    waiting: VecDeque<(Subscription, Message, Tag)>,
    /// Routes dropped and not yet announced to the driver.
    closed: VecDeque<u64>,
    /// The final counters of every dropped route's sender, summed.
    closed_stats: engine::Stats,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("vapid", &self.vapid)
            .field("settings", &self.settings)
            .field(
                "origins",
                &self.slots.iter().map(|s| &s.origin).collect::<Vec<_>>(),
            )
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl Web {
    /// Web Push routes signing with `vapid`; `(now, unix_now)` is one reading of both clocks.
    pub(super) fn new(
        settings: WebPushSettings,
        vapid: Vapid,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self, ConfigError> {
        settings.engine.check()?;
        if settings.max_origins == 0 {
            return Err(ConfigError::Zero("max_origins"));
        }
        Ok(Web {
            vapid,
            settings,
            wall: (now, unix_now),
            slots: Vec::new(),
            next_route: 0,
            waiting: VecDeque::new(),
            closed: VecDeque::new(),
            closed_stats: engine::Stats::default(),
        })
    }

    /// The message options of every session.
    pub(super) fn options(&self) -> &webpush::Options {
        &self.settings.options
    }

    /// The origin of web route `route`, while it has a sender.
    pub(super) fn origin(&self, route: u64) -> Option<&Origin> {
        self.slot(route).map(|slot| &slot.origin)
    }

    /// Queues `message` for `subscription` on its origin's sender (made now when there is
    /// room), or keeps it waiting for room. Hands the tag back when full.
    pub(super) fn queue(
        &mut self,
        subscription: Subscription,
        message: Message,
        tag: Tag,
        now: Instant,
    ) -> Result<(), Full<Tag>> {
        match self.place(subscription, message, tag, now) {
            Ok(()) => Ok(()),
            Err(Placed::Full(_, _, tag)) => Err(Full(tag)),
            Err(Placed::NoRoom(subscription, message, tag)) => {
                if self.waiting.len() >= self.settings.engine.max_pending {
                    return Err(Full(tag));
                }
                self.waiting.push_back((subscription, message, tag));
                Ok(())
            }
        }
    }

    /// Queues on the origin's sender, making it when the table has room.
    // The error hands the notification back by value, as the engine's `queue` does.
    #[allow(clippy::result_large_err)]
    fn place(
        &mut self,
        subscription: Subscription,
        message: Message,
        tag: Tag,
        now: Instant,
    ) -> Result<(), Placed> {
        let index = match self
            .slots
            .iter()
            .position(|slot| &slot.origin == subscription.origin())
        {
            Some(index) => index,
            None if self.slots.len() < self.settings.max_origins => {
                self.open(subscription.origin().clone(), now)
            }
            None => return Err(Placed::NoRoom(subscription, message, tag)),
        };
        let slot = &mut self.slots[index];
        slot.last_active = now;
        slot.sender
            .queue(subscription, message, tag, now)
            .map_err(|Full((subscription, message, tag))| Placed::Full(subscription, message, tag))
    }

    /// Makes the sender of `origin`; returns its index.
    fn open(&mut self, origin: Origin, now: Instant) -> usize {
        let credential = VapidCredential::new(
            self.vapid.clone(),
            origin.clone(),
            now,
            unix_time(self.wall, now),
        );
        let protocol = webpush::WebPushProtocol::new(origin.clone());
        // The settings were checked when the dispatcher was made.
        let sender = match engine::Sender::new(protocol, credential, self.settings.engine.clone()) {
            Ok(sender) => sender,
            Err(error) => unreachable!("checked web push settings: {error}"),
        };
        self.slots.push(Slot {
            route: self.next_route,
            origin,
            sender,
            last_active: now,
        });
        self.next_route += 1;
        self.slots.len() - 1
    }

    fn slot(&self, route: u64) -> Option<&Slot> {
        self.slots.iter().find(|slot| slot.route == route)
    }

    /// Drops the senders that had no work for `idle_timeout` (or any idle one when
    /// subscriptions wait for room), then gives room to the waiting subscriptions.
    fn tend(&mut self, now: Instant) {
        let pressed = !self.waiting.is_empty();
        let idle_timeout = self.settings.idle_timeout;
        let closed = &mut self.closed;
        let closed_stats = &mut self.closed_stats;
        self.slots.retain(|slot| {
            let expired = pressed || now >= slot.last_active + idle_timeout;
            let drop = expired && slot.sender.is_idle();
            if drop {
                closed.push_back(slot.route);
                closed_stats.add(&slot.sender.stats());
            }
            !drop
        });
        while let Some((subscription, message, tag)) = self.waiting.pop_front() {
            if let Err(
                Placed::Full(subscription, message, tag)
                | Placed::NoRoom(subscription, message, tag),
            ) = self.place(subscription, message, tag, now)
            {
                self.waiting.push_front((subscription, message, tag));
                break;
            }
        }
    }

    /// The next action of any web route.
    pub(super) fn poll_action(&mut self, now: Instant) -> Option<WebAction> {
        self.tend(now);
        if let Some(route) = self.closed.pop_front() {
            return Some(WebAction::Closed(route));
        }
        self.slots.iter_mut().find_map(|slot| {
            let action = HttpSender::poll_action(&mut slot.sender, now)?;
            slot.last_active = now;
            Some(WebAction::Http(slot.route, action))
        })
    }

    /// What happened on web route `route` (nothing, for a route already dropped).
    pub(super) fn handle(&mut self, route: u64, input: engine::Input, now: Instant) {
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.route == route) {
            slot.last_active = now;
            HttpSender::handle(&mut slot.sender, input, now);
        }
    }

    /// Time has passed.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        for slot in &mut self.slots {
            HttpSender::handle_timeout(&mut slot.sender, now);
        }
        self.tend(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next: a sender's
    /// deadline, or when an idle one is due to be dropped.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let pressed = !self.waiting.is_empty();
        self.slots
            .iter()
            .filter_map(|slot| {
                let drop_at = slot.sender.is_idle().then(|| {
                    if pressed {
                        slot.last_active
                    } else {
                        slot.last_active + self.settings.idle_timeout
                    }
                });
                [HttpSender::poll_timeout(&slot.sender), drop_at]
                    .into_iter()
                    .flatten()
                    .min()
            })
            .min()
    }

    /// Ends every notification of `session` that has no outcome yet (its deadline passed):
    /// those queued or in flight on an origin's sender end there; those still waiting for a
    /// free origin are handed back for the dispatcher to report.
    pub(super) fn expire(&mut self, session: SessionId, reason: &str, now: Instant) -> Vec<Tag> {
        for slot in &mut self.slots {
            HttpSender::expire(&mut slot.sender, session, reason, now);
        }
        let (gone, kept) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition::<VecDeque<_>, _>(|(_, _, tag)| tag.0 == session);
        self.waiting = kept;
        gone.into_iter().map(|(_, _, tag)| tag).collect()
    }

    /// No more notifications are coming for now.
    pub(super) fn flush(&mut self) {
        for slot in &mut self.slots {
            HttpSender::flush(&mut slot.sender);
        }
    }

    /// True when no subscription waits and no sender has work (idle senders kept for later
    /// subscriptions do not count).
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.slots.iter().all(|slot| slot.sender.is_idle())
    }

    /// The next outcome of any origin.
    pub(super) fn poll_report(&mut self) -> Option<(Outcome<Tag>, Receipt)> {
        self.slots
            .iter_mut()
            .find_map(|slot| HttpSender::poll_report(&mut slot.sender))
    }

    /// The next event of any origin, with the origin.
    pub(super) fn poll_event(&mut self) -> Option<(Origin, webpush::Event)> {
        self.slots.iter_mut().find_map(|slot| {
            let event = slot.sender.poll_event()?;
            Some((slot.origin.clone(), event))
        })
    }

    /// The counters of every origin's sender summed, those already dropped included (see
    /// [`Push::webpush_stats`](super::Push::webpush_stats)).
    pub(super) fn stats(&self) -> engine::Stats {
        let mut stats = self.closed_stats;
        for slot in &self.slots {
            stats.add(&slot.sender.stats());
        }
        stats
    }

    /// The origins with a sender now, in the order they were made.
    pub(super) fn origins(&self) -> impl Iterator<Item = &Origin> {
        self.slots.iter().map(|slot| &slot.origin)
    }
}

/// Why a subscription did not go to its origin's sender.
enum Placed {
    /// The sender is full.
    Full(Subscription, Message, Tag),
    /// The origin has no sender and the table is full.
    NoRoom(Subscription, Message, Tag),
}

#[cfg(test)]
mod tests;

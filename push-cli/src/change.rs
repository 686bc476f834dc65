//! What feedback asks of the store: a [`Change`] per device, and the counts of what was
//! applied.

use push_proto::webpush::Subscription;
use push_proto::{ApnsToken, Feedback, GcmToken, Platform};

/// A change to the store that feedback calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The device is gone (`invalid_device`): delete its row, unless it registered again
    /// after `unregistered_at`.
    Delete {
        /// The device's platform.
        platform: Platform,
        /// The token sent.
        token: String,
        /// When the provider last confirmed the token invalid (UNIX seconds; APNs' 410
        /// `timestamp`): a row with a newer `updated_at` is kept.
        unregistered_at: Option<i64>,
        /// The provider's reason (`BadDeviceToken`, `UNREGISTERED`), if it gave one.
        reason: Option<String>,
    },
    /// The token has a new canonical form: replace it (or, when the new token is already
    /// stored, delete the old row).
    Replace {
        /// The device's platform.
        platform: Platform,
        /// The token sent.
        old: String,
        /// Its canonical replacement.
        new: String,
    },
}

/// The store change a feedback calls for. A canonical id is used only when it is a valid
/// token other than the one sent; `bad_canonical` counts the others.
pub fn change_for(feedback: &Feedback, bad_canonical: &mut u64) -> Option<Change> {
    let device = &feedback.device;
    if feedback
        .error
        .as_ref()
        .is_some_and(|e| e.is_invalid_device())
    {
        return Some(Change::Delete {
            platform: device.platform,
            token: device.token.clone(),
            unregistered_at: feedback
                .receipt
                .unregistered_at
                .map(|ms| i64::try_from(ms / 1000).unwrap_or(i64::MAX)),
            reason: feedback.receipt.reason.clone(),
        });
    }
    let new = feedback.new_token.as_ref()?;
    let valid = match device.platform {
        Platform::Android => GcmToken::parse(new).is_ok(),
        Platform::Ios => ApnsToken::parse(new).is_ok(),
        Platform::Web => Subscription::from_json(new).is_ok(),
    };
    if !valid || *new == device.token {
        *bad_canonical += 1;
        return None;
    }
    Some(Change::Replace {
        platform: device.platform,
        old: device.token.clone(),
        new: new.clone(),
    })
}

/// What applying feedback did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows deleted for `invalid_device`.
    pub deleted: u64,
    /// Rows whose token was replaced.
    pub replaced: u64,
    /// Rows deleted because their canonical token was already stored.
    pub merged: u64,
}

/// The provider of each platform in a run, as the journal names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderNames {
    /// `apns` (binary gateway) or `apns-http2`.
    pub ios: &'static str,
    /// `fcm` or `gcm`.
    pub android: &'static str,
}

impl ProviderNames {
    /// The provider of `platform`.
    pub fn of(&self, platform: Platform) -> &'static str {
        match platform {
            Platform::Ios => self.ios,
            Platform::Android => self.android,
            Platform::Web => "webpush",
        }
    }
}

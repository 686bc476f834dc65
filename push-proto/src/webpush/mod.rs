//! Web Push (RFC 8030) to browsers.
mod ece;
mod origin;
mod randomness;
mod subscription;

pub use ece::{EncryptError, HEADER_LEN, MAX_BODY, MAX_PLAINTEXT, TAG_LEN};
pub use origin::{EndpointError, MAX_ENDPOINT_LEN, Origin};
pub use randomness::{Randomness, RandomnessError, SystemRandomness};
pub use subscription::{AUTH_LEN, P256DH_LEN, Subscription, SubscriptionError};

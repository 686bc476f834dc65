//! [`Randomness`]: where the fresh values of each encryption come from, behind one seam.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

/// The source of the random bytes every encrypted message needs (a new ephemeral key pair and
/// a new salt per message, RFC 8291 §3.1 and RFC 8188 §2.1).
///
/// Production uses [`SystemRandomness`]; a test plugs in fixed bytes to reproduce a worked
/// example byte for byte. Filling a buffer is a computation, not IO, as far as the core is
/// concerned: it is called synchronously while a request is built.
pub trait Randomness: Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomnessError>;

    /// True when this is the operating system's generator, so that each message's ephemeral
    /// key pair may be made inside `ring` (about 4 times faster than one through a
    /// scalar drawn with [`fill`](Self::fill)); only [`SystemRandomness`] says so. Other
    /// sources get their key pairs from `fill`, byte for byte.
    fn is_system(&self) -> bool {
        false
    }
}

/// The randomness source failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no random bytes: {0}")]
pub struct RandomnessError(pub String);

/// The operating system's cryptographically secure generator (through `ring`).
pub struct SystemRandomness(SystemRandom);

impl Default for SystemRandomness {
    fn default() -> Self {
        SystemRandomness::new()
    }
}

impl SystemRandomness {
    /// The system generator.
    pub fn new() -> Self {
        SystemRandomness(SystemRandom::new())
    }
}

impl fmt::Debug for SystemRandomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemRandomness")
    }
}

impl Randomness for SystemRandomness {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomnessError> {
        self.0
            .fill(dest)
            .map_err(|_| RandomnessError("the system generator failed".into()))
    }

    fn is_system(&self) -> bool {
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// Hands out the given bytes in order, then fails: the seam a worked example goes
    /// through.
    #[derive(Debug, Default)]
    pub(crate) struct Scripted(Mutex<VecDeque<u8>>);

    impl Scripted {
        pub(crate) fn new(parts: &[&[u8]]) -> Self {
            Scripted(Mutex::new(parts.concat().into()))
        }
    }

    impl Randomness for Scripted {
        fn fill(&self, dest: &mut [u8]) -> Result<(), RandomnessError> {
            let mut bytes = self.0.lock().unwrap();
            if bytes.len() < dest.len() {
                return Err(RandomnessError("script exhausted".into()));
            }
            let len = dest.len();
            for (slot, byte) in dest.iter_mut().zip(bytes.drain(..len)) {
                *slot = byte;
            }
            Ok(())
        }
    }

    #[test]
    fn system_randomness_fills_and_differs() {
        let random = SystemRandomness::new();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        random.fill(&mut a).unwrap();
        random.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_eq!(format!("{random:?}"), "SystemRandomness");
    }

    #[test]
    fn scripted_hands_out_in_order_then_fails() {
        let scripted = Scripted::new(&[&[1, 2], &[3]]);
        let mut two = [0u8; 2];
        scripted.fill(&mut two).unwrap();
        assert_eq!(two, [1, 2]);
        assert!(scripted.fill(&mut two).is_err());
    }
}

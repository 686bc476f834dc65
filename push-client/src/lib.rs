//! The runtime-agnostic async driver of push.

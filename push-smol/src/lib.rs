//! push on the smol runtime.

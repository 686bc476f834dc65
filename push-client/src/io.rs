//! What the driver's helper tasks (connection tasks, writers, credential exchanges) report to it,
//! over one bounded channel the driver drains. The driver never sends into this channel.

use bytes::Bytes;
use push_proto::Route;
use push_proto::engine::{ConnId, Input};

use crate::error::Error;

/// How many reports may wait for the driver; a task reporting into a full channel waits.
pub(crate) const IO_CAPACITY: usize = 256;

/// Something that happened on a task of the driver.
pub(crate) enum Io {
    /// News of the binary gateway connection numbered `connection`.
    Gateway {
        connection: u64,
        report: GatewayReport,
    },
    /// What an HTTP provider's connection tasks or credential exchange report.
    Http(Route, HttpEvent),
}

/// What a binary gateway connection's tasks report.
pub(crate) enum GatewayReport {
    /// The TLS connection is open.
    Connected,
    /// Dialing or the TLS handshake failed.
    ConnectFailed(Error),
    /// Bytes the gateway sent.
    Read(Vec<u8>),
    /// The oldest transmit handed to the writer is written.
    Written,
    /// The connection ended: the gateway closed it, or reading or writing failed.
    Closed(Option<Error>),
}

/// What an HTTP route's tasks report.
pub(crate) enum HttpEvent {
    /// Facts about connections and streams, in the order they happened.
    Inputs(Vec<Input>),
    /// Dialing a connection failed.
    DialFailed(ConnId, Error),
    /// The credential endpoint's answer.
    Credential(Result<http::Response<Bytes>, Error>),
}

//! Campaigns over Redis Streams: `push enqueue` appends jobs (a batch of devices each) to one
//! stream, `push worker`s on any number of machines read them through a consumer group and
//! write one result per device, `push campaign` reads the progress and the results.

pub mod args;
pub mod campaign;
mod campaign_apply;
mod campaign_delete;
mod clients;
mod conn;
mod credentials;
pub mod enqueue;
mod job;
mod keys;
mod message;
pub mod worker;

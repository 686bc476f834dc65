//! `push`: send push notifications from the command line, read the APNs feedback service,
//! and try it all against loopback mock servers (`push demo`, `push bench`, `push mock`).

// A binary: `pub` marks what each module offers the others, nothing is exported.
#![allow(unreachable_pub)]

mod apple;
mod apple_push;
mod apps;
mod bench;
mod bench_h2;
mod bench_webpush;
mod change;
mod cli;
mod cli_apple;
mod config;
mod cpu;
mod db;
mod demo;
mod devices;
mod feedback;
mod guard;
mod interrupt;
mod journal;
mod jsonl;
mod loopback;
mod main_error;
mod metrics;
mod metrics_server;
mod mock;
mod oauth_once;
mod raw_h2;
mod recorder;
mod redis_queue;
mod run_journal;
mod send;
mod sql_template;
mod store;
mod store_command;
mod store_schema;
mod summary;
mod web;
mod workdir;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// mimalloc rather than the system allocator: the HTTP/2 send path frees its responses in
/// bursts of up to a connection's 1,000 streams (h2 decodes them, the core handles them a
/// turn later), which overflow glibc's per-thread cache and send the frees and the next
/// mallocs through its slow bins. `push bench`, 1,000,000 FCM notifications: 10.9-12.6 µs of
/// client CPU per notification under glibc, 6.7-7.9 µs under mimalloc, for 44-51 MB more peak
/// RSS (BENCHMARKS.md, "The regression re-measured, and the allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send(args) => send::command(*args),
        Command::Feedback(args) => feedback::command(args),
        Command::Store(args) => store_command::command(args),
        Command::Channel(args) => apple::channel_command(args),
        Command::Broadcast(args) => apple::broadcast_command(*args),
        Command::Widgets(args) => apple_push::widgets_command(*args),
        Command::Mock(args) => mock::command(args),
        Command::Demo(args) => demo::command(args),
        Command::Enqueue(args) => redis_queue::enqueue::command(*args),
        Command::Worker(args) => redis_queue::worker::command(*args),
        Command::Campaign(args) => redis_queue::campaign::command(args),
        Command::Bench(args) => bench::command(args),
        Command::Vapid(args) => web::command(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("push: error: {}", failure.reason());
            failure.exit_code()
        }
    }
}

//! How a command fails: the one-line reason and the exit status.

use std::process::ExitCode;

/// A failed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad arguments or configuration (unreadable file, bad PEM, bad URL): exit status 2.
    Usage(String),
    /// The run could not do its job (TLS, authentication, an unreachable service, I/O): exit
    /// status 1.
    Run(String),
    /// Ctrl-C stopped the run after it recorded everything: exit status 130.
    Interrupted(String),
}

impl Failure {
    /// The exit status.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Run(_) => ExitCode::from(1),
            Failure::Interrupted(_) => ExitCode::from(crate::interrupt::EXIT_INTERRUPTED),
        }
    }

    /// The reason, on one line.
    pub fn reason(&self) -> String {
        let (Failure::Usage(reason) | Failure::Run(reason) | Failure::Interrupted(reason)) = self;
        reason.replace('\n', " ")
    }
}

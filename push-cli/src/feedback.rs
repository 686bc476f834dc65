//! todo

use crate::main_error::Failure;

/// todo
pub fn command(_args: crate::cli::FeedbackArgs) -> Result<(), Failure> {
    Ok(())
}

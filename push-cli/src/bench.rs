//! todo

use crate::main_error::Failure;

/// todo
pub fn command(_args: crate::cli::BenchArgs) -> Result<(), Failure> {
    Ok(())
}

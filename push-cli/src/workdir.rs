//! The directory a command writes its files into: the one the user named, or a temporary one.

use std::path::PathBuf;

use tempfile::TempDir;

use crate::main_error::Failure;

/// `keep` (created if missing), or a new temporary directory named `prefix…` that is removed
/// when the returned guard is dropped.
pub fn work_dir(
    keep: Option<&PathBuf>,
    prefix: &str,
) -> Result<(PathBuf, Option<TempDir>), Failure> {
    match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", dir.display())))?;
            Ok((dir.clone(), None))
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .map_err(|e| Failure::Run(format!("cannot create a temporary directory: {e}")))?;
            Ok((PathBuf::from(temporary.path()), Some(temporary)))
        }
    }
}

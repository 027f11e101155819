//! The package cache lock: two composes sharing a cache would download into and index the same
//! files, so a compose holds `CACHE/lock` from before `apt update` until it ends.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::progress::Progress;

/// Held for as long as it lives; the kernel drops the lock with the file.
pub struct CacheLock {
    _file: fs::File,
}

impl CacheLock {
    /// Creates `cache` if needed and locks it, saying so when another compose holds it.
    pub fn acquire(cache: &Path, progress: &Progress) -> Result<CacheLock> {
        fs::create_dir_all(cache).with_context(|| format!("Creating {}", cache.display()))?;
        let path = cache.join("lock");
        let file =
            fs::File::create(&path).with_context(|| format!("Creating {}", path.display()))?;
        if file.try_lock().is_err() {
            progress.step(&format!(
                "Waiting for another compose using {}",
                cache.display()
            ));
            file.lock()
                .with_context(|| format!("Locking {}", path.display()))?;
        }
        Ok(CacheLock { _file: file })
    }
}

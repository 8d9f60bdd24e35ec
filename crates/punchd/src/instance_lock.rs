//! One `punchd serve` per database: an exclusive lock on `<database>.lock`, next to the database file, held for
//! the life of the process (the operating system releases it when the process ends, even on `kill -9`).
//!
//! Two servers on one SQLite file would both pull the same terminals and both answer their pushes (issue 6).
//! The other subcommands (listings, `devices approve`, `token create`…) take no lock: they are safe to run
//! beside a server (SQLite WAL).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// The lock file of a database: the database's path with `.lock` appended.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Take the lock for `database`, creating the lock file (and its directory) when missing.
///
/// Errors: another process holds the lock (a second `serve` on the same database: the message names the lock
/// file and the process id written in it), or the lock file cannot be created.
pub fn acquire(database: &Path) -> anyhow::Result<InstanceLock> {
    let path = lock_path(database);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating directory {}: {e}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("opening lock file {}: {e}", path.display()))?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            anyhow::bail!(
                "another punchd serve is already running on database {} (it holds {}{}); stop it first, or give \
                 this one its own --database",
                database.display(),
                path.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(", process {holder}")
                }
            );
        }
        Err(fs4::TryLockError::Error(e)) => {
            anyhow::bail!("locking {}: {e}", path.display())
        }
    }
    // The holder's process id, for the message above; the lock itself is what counts.
    let _ = file.set_len(0);
    let _ = std::io::Write::write_all(&mut &file, std::process::id().to_string().as_bytes());
    Ok(InstanceLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("punchd.db");
        let first = acquire(&db).unwrap();
        assert_eq!(first.path, dir.path().join("punchd.db.lock"));
        let err = acquire(&db).unwrap_err().to_string();
        assert!(
            err.contains("another punchd serve is already running"),
            "{err}"
        );
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(acquire(&db).is_ok());
    }
}

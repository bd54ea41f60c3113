//! Uploads: a PUT body is spooled to disk while its MD5 is computed (`spool`), then a durable
//! queue uploads it to 123 in the background and resumes after a restart (`queue`).
//!
//! On disk, under the state dir: `spool/` (bodies), `queue/` (one manifest per job, the source
//! of truth after a crash), `failed/<job id>/` (content and reason of uploads that gave up).

mod queue;
pub mod remote;
mod spool;
mod store;

pub use queue::{ChangeFn, NewJob, PendingFile, QueueConfig, QueueStats, UploadQueue};
pub use spool::{Spool, SpoolError, SpoolWriter, SpooledFile, MAX_FILE_SIZE};
pub use store::{FailedManifest, JobId};

/// Prefix of the temporary names uploads use on 123 before they replace a file.
const TEMP_PREFIX: &str = ".pan123-upload-";

/// 123 refuses names of 256 characters or more (docs/123.md, open §4.1).
const MAX_NAME_CHARS: usize = 255;

/// True for the temporary names of uploads in progress, which listings must hide.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// `.pan123-upload-<job id>-<name>`, cut to 123's name length limit. The job id alone makes
/// it unique; the name is there for whoever looks at the folder on 123's own site.
fn temp_name(id: &JobId, name: &str) -> String {
    let full = format!("{TEMP_PREFIX}{id}-{name}");
    full.chars().take(MAX_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_short_enough() {
        let id = JobId::new();
        let t = temp_name(&id, "report.docx");
        assert!(is_temp_name(&t));
        assert!(t.ends_with("-report.docx") && t.contains(id.as_str()));
        assert!(!is_temp_name("report.docx"));
        let long = "长".repeat(300);
        let t = temp_name(&id, &long);
        assert_eq!(t.chars().count(), MAX_NAME_CHARS);
        assert!(is_temp_name(&t));
    }
}

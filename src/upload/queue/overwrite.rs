//! The safe-overwrite protocol one attempt follows on 123.
//!
//! docs/123.md, open §11: the upload always goes to the job's temporary name, then `place` swaps
//! it in (a listing and a rename for a new file, plus a trash for an overwrite). Uploading
//! under the real name first would rely on `create` refusing a taken name. Each step is
//! persisted (`set_phase`) before it starts, so a crash between steps leaves both files, never
//! neither, and the next attempt re-checks on 123 what the manifest cannot know.

use std::time::SystemTime;

use tokio::sync::OwnedMutexGuard;
use unicode_normalization::UnicodeNormalization;

use super::{cancelled, holds, same_name, UploadQueue, MAX_REDECIDE};
use crate::backend::{Backend, Entry, Error};
use crate::upload::store::{JobId, Phase, Record};
use crate::upload::{is_temp_name, temp_name};

impl UploadQueue {
    /// Brings a job from its persisted phase to "the file is in place on 123".
    ///
    /// docs/123.md, open §11: the upload always goes to the job's temporary name, then `place`
    /// swaps it in (a listing and a rename for a new file, plus a trash for an overwrite).
    /// Uploading under the real name first would rely on `create` refusing a taken name.
    pub(super) async fn drive(&self, id: &JobId) -> Result<(Entry, OwnedMutexGuard<()>), Error> {
        let (mount, step, src) = self
            .with_job(id, |j| {
                (j.record.mount.clone(), j.step.clone(), j.file.source())
            })
            .ok_or_else(cancelled)?;
        let backend = self.backends.get(&mount).ok_or(Error::Unsupported)?.clone();
        // Whether the current phase was entered in this attempt (else a crash or a failed
        // attempt may have left more done on 123 than the manifest says).
        let mut fresh = false;
        let mut redecide = 0;
        loop {
            let guard = step.clone().lock_owned().await;
            let rec = self.record(id).ok_or_else(cancelled)?;
            let temp = temp_name(&rec.id, &rec.name);
            match rec.phase.clone() {
                Phase::Queued => {
                    let phase = Phase::Uploading {
                        parent: rec.parent_id,
                        name: temp,
                    };
                    self.set_phase(id, phase).await?;
                }
                Phase::Uploading { parent, name } => {
                    drop(guard);
                    if !fresh {
                        // The upload may have completed before a crash or a lost answer.
                        let children = backend.list(parent).await?;
                        if let Some(e) = children
                            .iter()
                            .find(|e| same_name(&e.name, &name) && holds(e, &rec))
                        {
                            let phase = Phase::Uploaded {
                                id: e.id,
                                parent,
                                name,
                            };
                            self.set_phase(id, phase).await?;
                            fresh = true;
                            continue;
                        }
                    }
                    if !is_temp_name(&name) {
                        // A manifest from before every upload went to a temporary name.
                        let phase = Phase::Uploading { parent, name: temp };
                        self.set_phase(id, phase).await?;
                        fresh = true;
                        continue;
                    }
                    match backend
                        .upload(
                            parent,
                            &name,
                            &src,
                            &self.options(&rec.mount, &name, src.size),
                        )
                        .await
                    {
                        Ok(e) => {
                            self.set_phase(
                                id,
                                Phase::Uploaded {
                                    id: e.id,
                                    parent,
                                    name,
                                },
                            )
                            .await?
                        }
                        // Something holds our temporary name (a leftover the re-check did
                        // not recognise): decide again from the start.
                        Err(Error::AlreadyExists) if redecide < MAX_REDECIDE => {
                            redecide += 1;
                            self.set_phase(id, Phase::Queued).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Phase::Uploaded {
                    id: file_id,
                    parent,
                    name,
                } => match self.place(&*backend, &rec, file_id, parent, &name).await {
                    Ok(Placed::Done(entry)) => return Ok((entry, guard)),
                    Ok(Placed::Moved) => {}
                    Ok(Placed::Blocked) => {
                        tracing::error!(job = %id, "a folder has the name this upload should take");
                        return Err(Error::AlreadyExists);
                    }
                    // The uploaded file vanished, or the name was taken again mid-swap.
                    Err(Error::NotFound | Error::AlreadyExists) if redecide < MAX_REDECIDE => {
                        redecide += 1;
                        if !self.still_there(&*backend, file_id, parent, &name).await? {
                            self.set_phase(id, Phase::Queued).await?;
                        }
                    }
                    Err(e) => return Err(e),
                },
            }
            fresh = true;
        }
    }

    /// One step of putting uploaded entry `file_id` (now `name` in `parent`) where the job's
    /// target says. Called with the step lock held.
    async fn place(
        &self,
        backend: &dyn Backend,
        rec: &Record,
        file_id: u64,
        parent: u64,
        name: &str,
    ) -> Result<Placed, Error> {
        let id = &rec.id;
        if parent != rec.parent_id {
            // Retargeted to another folder: move it under a name nobody else has.
            if is_temp_name(name) {
                backend.move_to(&[file_id], rec.parent_id).await?;
                let phase = Phase::Uploaded {
                    id: file_id,
                    parent: rec.parent_id,
                    name: name.to_string(),
                };
                self.set_phase(id, phase).await?;
            } else {
                let temp = temp_name(id, &rec.name);
                backend.rename(file_id, &temp).await?;
                let phase = Phase::Uploaded {
                    id: file_id,
                    parent,
                    name: temp,
                };
                self.set_phase(id, phase).await?;
            }
            return Ok(Placed::Moved);
        }
        if same_name(name, &rec.name) {
            return Ok(Placed::Done(file_entry(file_id, rec)));
        }
        let children = backend.list(parent).await?;
        let old: Vec<&Entry> = children
            .iter()
            .filter(|e| same_name(&e.name, &rec.name) && e.id != file_id)
            .collect();
        if old.iter().any(|e| e.is_dir) {
            return Ok(Placed::Blocked);
        }
        if let [same] = old.as_slice() {
            if holds(same, rec) && is_temp_name(name) {
                // 123 had this very content under the name already: keep that file.
                backend.trash(&[file_id]).await?;
                return Ok(Placed::Done((*same).clone()));
            }
        }
        if !old.is_empty() {
            let ids: Vec<u64> = old.iter().map(|e| e.id).collect();
            tracing::info!(job = %id, old = ?ids, "overwrite: the previous version goes to the recycle bin");
            backend.trash(&ids).await?;
        }
        backend.rename(file_id, &rec.name).await?;
        let phase = Phase::Uploaded {
            id: file_id,
            parent,
            name: rec.name.clone(),
        };
        self.set_phase(id, phase).await?;
        Ok(Placed::Moved)
    }

    /// Whether entry `file_id` is still `name` in `parent`.
    async fn still_there(
        &self,
        backend: &dyn Backend,
        file_id: u64,
        parent: u64,
        name: &str,
    ) -> Result<bool, Error> {
        Ok(backend
            .list(parent)
            .await?
            .iter()
            .any(|e| e.id == file_id && same_name(&e.name, name)))
    }
}

/// What one step of `place` achieved.
enum Placed {
    /// The file is in place.
    Done(Entry),
    /// A step was made; another follows.
    Moved,
    /// A folder holds the target name: the file cannot replace it.
    Blocked,
}

/// The entry of a job's file once it is in place.
fn file_entry(id: u64, rec: &Record) -> Entry {
    let now = SystemTime::now();
    Entry {
        id,
        name: rec.name.nfc().collect(),
        is_dir: false,
        size: rec.size,
        md5: Some(rec.md5.clone()),
        version: None,
        modified: now,
        created: now,
    }
}

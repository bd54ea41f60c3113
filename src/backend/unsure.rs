//! Writes that may have acted although their answer was lost (a 5xx or a cut after 123 made
//! the folder or the file). Such calls are never resent blindly: the folder is listed first,
//! and only when the name is still missing is the call sent again. One implementation for
//! every writable backend.

use std::future::Future;

use unicode_normalization::UnicodeNormalization;

use super::retry::Retries;
use super::{Backend, Entry, Error};

/// How often an unsure call is tried in all (after re-checking each time).
const UNSURE_ATTEMPTS: u32 = 3;

/// Failures after which 123 may or may not have acted on the call.
pub fn transient(e: &Error) -> bool {
    matches!(e, Error::Unavailable(_) | Error::Transport(_))
}

/// Sends `call`; after a transient failure asks `recheck` whether the call acted anyway
/// (`Ok(Some(_))`: it did; `Ok(None)`: it did not, so it is sent again; `Err`: give up, e.g.
/// `AlreadyExists` when something else now holds the name).
pub async fn send_unsure<T, C, CF, K, KF>(mut call: C, mut recheck: K) -> Result<T, Error>
where
    C: FnMut() -> CF,
    CF: Future<Output = Result<T, Error>>,
    K: FnMut() -> KF,
    KF: Future<Output = Result<Option<T>, Error>>,
{
    let mut retries = Retries::new(0, UNSURE_ATTEMPTS - 1);
    loop {
        let error = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !transient(&error) || !retries.covers(&error) {
            return Err(error);
        }
        tracing::info!(attempt = retries.transient() + 1, error = %error, "a write may or may not have acted: re-checking");
        if let Some(v) = recheck().await? {
            return Ok(v);
        }
        // No resend that would start past the request's deadline.
        let delay = retries.next(&error).ok_or(error)?;
        tokio::time::sleep(delay).await;
    }
}

/// What an unsure call that opens something led to: its own answer, or, after a lost answer,
/// the entry the re-check found (the call had acted).
pub enum Outcome<T> {
    Answered(T),
    Found(Entry),
}

/// [`send_unsure`] for a call that opens a file upload, where an instant upload may have
/// happened before the answer was lost: its answer, or the file with this content that the
/// re-check found.
pub async fn open_file<B, T, C, CF>(
    backend: &B,
    parent: u64,
    name: &str,
    md5: &str,
    size: u64,
    mut call: C,
) -> Result<Outcome<T>, Error>
where
    B: Backend + ?Sized,
    C: FnMut() -> CF,
    CF: Future<Output = Result<T, Error>>,
{
    send_unsure(
        || {
            let answer = call();
            async move { answer.await.map(Outcome::Answered) }
        },
        || async {
            Ok(made_file(backend, parent, name, md5, size)
                .await?
                .map(Outcome::Found))
        },
    )
    .await
}

/// The live child of `parent` named exactly `name` (compared in NFC, as listed), if any.
pub async fn find_child<B: Backend + ?Sized>(
    backend: &B,
    parent: u64,
    name: &str,
) -> Result<Option<Entry>, Error> {
    let wanted: String = name.nfc().collect();
    Ok(backend
        .list(parent)
        .await?
        .into_iter()
        .find(|e| e.name == wanted))
}

/// The re-check of an unsure `mkdir`: the folder if it is there now, `AlreadyExists` when a
/// file holds the name.
pub async fn made_folder<B: Backend + ?Sized>(
    backend: &B,
    parent: u64,
    name: &str,
) -> Result<Option<Entry>, Error> {
    match find_child(backend, parent, name).await? {
        Some(entry) if entry.is_dir => Ok(Some(entry)),
        Some(_) => Err(Error::AlreadyExists),
        None => Ok(None),
    }
}

/// The re-check of an unsure file creation: the file if it is there with this content,
/// `AlreadyExists` when something else holds the name.
pub async fn made_file<B: Backend + ?Sized>(
    backend: &B,
    parent: u64,
    name: &str,
    md5: &str,
    size: u64,
) -> Result<Option<Entry>, Error> {
    match find_child(backend, parent, name).await? {
        Some(e) if !e.is_dir && e.size == size && e.md5.as_deref() == Some(md5) => Ok(Some(e)),
        Some(_) => Err(Error::AlreadyExists),
        None => Ok(None),
    }
}

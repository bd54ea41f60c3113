//! glibc malloc settings for a server process, set once before any thread starts.
//!
//! glibc gives every thread that allocates while the others hold their arena an arena of its
//! own (up to 8 per core), and each keeps its high-water mark: the tokio workers and the
//! blocking pool (spool writes, fsyncs, argon2) grew the process by megabytes that idle never
//! gave back. Two arenas are enough for two busy workers. A fixed mmap threshold keeps large
//! buffers (request bodies, PROPFIND answers, spooled slices) out of the arenas, so freeing them
//! returns their memory at once instead of raising the threshold until they stay.

/// Caps the arenas and fixes the mmap threshold. A no-op outside glibc.
pub fn tune_for_server() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Arenas shared by every thread.
        const ARENAS: libc::c_int = 2;
        /// Allocations of this many bytes and more are mapped on their own.
        const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
        // SAFETY: mallopt only changes allocator parameters; it is called before the runtime
        // starts any thread, as glibc recommends.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

//! Memory settings for host processes on Linux with glibc (desktop hosts, the `streetsync` CLI
//! and desk, Python or JVM hosts on Linux). Android and iOS bring their own allocators and need
//! none of this.
//!
//! Why: Automerge allocates a fresh deflate state (about 380 KB) for each compressed column on
//! every save. glibc serves the first from `mmap`, and after freeing it raises its dynamic mmap
//! threshold, so every later one comes from the main heap instead. There the big blocks and the
//! small long-lived allocations of the projection cache interleave, and the heap cannot shrink:
//! saving 10,000 contacts in one process grows the resident set to about 98 MB while the live
//! heap stays near 10 MB (`docs/benchmarks.md`, store bench). A fixed threshold keeps those
//! blocks in `mmap`, returned to the kernel on free, for the same save time.

/// The fixed mmap threshold: glibc's own default starting value (128 KiB), kept from rising.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap threshold for this process, so the resident set of a long session of saves
/// stays near the live heap (see the module docs). A process-wide setting, so it is the host's
/// call: the CLI makes it at start; a library cannot know whether its host tuned malloc itself.
/// Returns whether the setting took effect: `false` on other platforms and other C libraries,
/// where there is nothing to tune.
pub fn tune_host_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes a malloc parameter; glibc allows it at any time, from any
        // thread.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_threshold_is_set_on_glibc_and_nowhere_else() {
        let took = super::tune_host_allocator();
        assert_eq!(took, cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}

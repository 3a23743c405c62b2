//! What a cache does in a child process made by `fork()`.
//!
//! Python's data loaders (and any program that forks without `exec`) copy the whole process,
//! but only the thread that called `fork()` goes on in the child: texcache's loader, prefetch,
//! history, control-socket and pressure threads stay in the parent, and a lock one of them held
//! at that instant stays held for ever in the child's copy. So, in a child, texcache never
//! touches what it made in the parent:
//!
//! - A [`Cache`](crate::Cache) made in the parent becomes, on its first use in the child, a
//!   fresh cache of the child's own: the same config (minus the control socket and the trace
//!   file, which are the parent's), no entries, its threads started anew when first needed.
//!   The parent's tiers, loads in flight, prefetch queue, socket and trace are left as they
//!   were, and never freed, joined or removed by the child.
//! - A handle from the parent ([`Handle`](crate::Handle): a bitmap, a texture) still reads its
//!   pixels in the child; cloning and dropping it there changes no count (the parent's tier,
//!   whose lock may be held, is never locked in the child, and never frees those entries).
//! - A [`VideoNode`](crate::video::VideoNode) from the parent, whose decoder thread the child does not
//!   have, returns an error from every call that would wait for it, and is let go without
//!   joining that thread.
//!
//! Each object records the process *generation* it was made in: a counter that a
//! `pthread_atfork` child handler increments in every child. The hot paths first ask whether
//! this process was forked at all (one relaxed load of that counter), and only then read the
//! object's generation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTERED: AtomicBool = AtomicBool::new(false);

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The generation of this process: 0 in the process that first used texcache, more in each
/// child forked since (a grandchild's is more than its parent's). Registers the fork handler on first use: every
/// object that records its generation calls this when it is made, so the handler is in place
/// before any fork that could concern it.
pub(crate) fn generation() -> u64 {
    if !REGISTERED.load(Ordering::Acquire) {
        register();
    }
    GENERATION.load(Ordering::Relaxed)
}

/// Registers the fork handler, and only then says so: a thread that finds it registered knows
/// the handler is in place. Threads racing through the first call may each register one; that
/// only adds more than one to the generation at a fork, which is all it has to change.
#[cold]
fn register() {
    // SAFETY: `in_child` is an `extern "C" fn()` that only increments an atomic (what is
    // allowed in a child of a multithreaded process); the handler is never unregistered.
    let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    assert_eq!(rc, 0, "pthread_atfork failed");
    REGISTERED.store(true, Ordering::Release);
}

/// Whether this process was forked from one that used texcache. One relaxed load: the hot
/// paths (a hit, a handle's drop) ask this first and read an object's generation only when it
/// is true, so a process that never forked pays nothing more.
#[inline]
pub(crate) fn forked() -> bool {
    GENERATION.load(Ordering::Relaxed) != 0
}

/// Whether something made in generation `born` was made in this process (not inherited
/// through `fork`).
#[inline]
pub(crate) fn is_ours(born: u64) -> bool {
    born == GENERATION.load(Ordering::Relaxed)
}

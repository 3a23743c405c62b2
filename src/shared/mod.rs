//! The CPU tier shared between the processes of a machine (§12): one owner decodes and holds
//! the pictures, its clients (data-loader workers, training ranks, helper processes) view them
//! without copies.
//!
//! - `owner.rs`: the owner's server (`Cache::share`, or `[shared] socket` in its config): one
//!   thread per client, what each client holds kept as handles in the owner's tier.
//! - `client.rs`: [`connect`], a [`Client`] with the picture calls of a cache, and
//!   [`SharedBitmap`], a read-only view of the owner's pixels.
//! - `wire.rs`: the messages between them.
//!
//! Each picture's pixels are a sealed `memfd` (`crate::os::shm`): clients map them read-only
//! and cannot map them writable, whatever descriptor they use. A client's first request for a
//! picture is an exchange with the owner over a `SOCK_SEQPACKET` Unix socket; its later hits
//! of it are served in the client, from a hold table it shares with the owner (`wire.rs`).

mod client;
pub(crate) mod owner;
mod wire;

pub use client::{connect, Client, SharedBitmap};

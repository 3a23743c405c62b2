//! Video nodes (§4): frames decoded ahead into a bounded queue, one texture per node, all
//! of it freed on stop.
//!
//! - `source.rs`: the [`FrameSource`] trait and the types that describe a stream.
//! - `y4m.rs`, `animation.rs`, `ffmpeg.rs`: the sources (YUV4MPEG2; GIF, APNG and WebP
//!   animations; every other video file through FFmpeg, feature `ffmpeg`); `open.rs` picks one
//!   by a file's content.
//! - `node.rs`: the node, its decoder thread, queue and buffer pool, the playback clock helper.
//! - `texture.rs`: the node's one texture and the WGSL that samples YUV planes as RGB.
//! - `convert.rs`: the same conversion on the CPU (`Frame::to_rgb`).

mod animation;
mod convert;
#[cfg(feature = "ffmpeg")]
mod ffmpeg;
mod node;
mod open;
mod source;
#[cfg(feature = "gpu")]
mod texture;
mod y4m;

pub(crate) use node::Shared;
pub use node::{live_frame_buffers, Frame, NodeStats, State, VideoNode};
pub use open::open;
pub(crate) use source::is_animation;
pub use source::{frame_bytes, FrameSource, FrameTime, Matrix, SourceOptions, VideoInfo};
#[cfg(feature = "gpu")]
pub use texture::{VideoTexture, YUV_WGSL};

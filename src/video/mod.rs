//! Video nodes (§4): frames decoded ahead into a bounded queue, one texture per node, all
//! of it freed on stop.
//!
//! - `source.rs`: where frames come from (YUV4MPEG2; GIF, APNG, WebP animations).
//! - `ffmpeg.rs`: every other video file, through FFmpeg (feature `ffmpeg`).
//! - `node.rs`: the node, its decoder thread, queue and buffer pool, the playback clock helper.
//! - `texture.rs`: the node's one texture and the WGSL that samples YUV planes as RGB.
//! - `convert.rs`: the same conversion on the CPU (`Frame::to_rgb`).

mod convert;
#[cfg(feature = "ffmpeg")]
pub(crate) mod ffmpeg;
#[cfg(feature = "ffmpeg")]
pub(crate) use ffmpeg::encode;
mod node;
pub mod source;
#[cfg(feature = "gpu")]
mod texture;

pub(crate) use node::Shared;
pub use node::{live_frame_buffers, Frame, NodeStats, State, VideoNode};
pub use source::{frame_bytes, FrameSource, FrameTime, Matrix, SourceOptions, VideoInfo};
#[cfg(feature = "gpu")]
pub use texture::{yuv_params, VideoTexture, YUV_WGSL};

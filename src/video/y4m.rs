//! YUV4MPEG2 files: 8-bit 4:2:0 frames read straight into the node's buffer, no
//! intermediate copy.

use super::source::{index_at, FrameSource, FrameTime, Matrix, VideoInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::PixelFormat;
use crate::os::file::read_up_to;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// A YUV4MPEG2 file: a header line, then `FRAME` lines each followed by the Y, U and V planes.
pub struct Y4m {
    href: String,
    reader: BufReader<File>,
    info: VideoInfo,
    /// Byte offset of the first `FRAME`.
    data_start: u64,
    next: u64,
    /// Reused for each `FRAME` line, so reading a frame allocates nothing.
    line: Vec<u8>,
}

const MAX_HEADER: usize = 4096;

impl Y4m {
    /// Parses the header of an open file, refusing frames of more than `max_pixels` pixels.
    pub fn new(href: &str, path: &Path, file: File, max_pixels: u64) -> Result<Y4m> {
        let bad = |detail: String| Error::new(href, ErrorKind::Video { detail });
        let len = file.metadata().map_err(|e| Error::io(href, path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let header = read_line(&mut reader, MAX_HEADER)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => bad(format!("YUV4MPEG2 {e}")),
                _ => Error::io(href, path, e),
            })?
            .ok_or_else(|| bad("not a YUV4MPEG2 file: no header line".into()))?;
        let header =
            std::str::from_utf8(&header).map_err(|_| bad("YUV4MPEG2 header is not text".into()))?;
        let mut fields = header.split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(bad("not a YUV4MPEG2 file".into()));
        }
        let (mut w, mut h, mut rate, mut full_range) = (0u32, 0u32, (25u32, 1u32), false);
        let mut matrix = Matrix::Bt601;
        for f in fields.filter(|f| !f.is_empty()) {
            let (tag, val) = f.split_at(1);
            match tag {
                "W" => w = val.parse().map_err(|_| bad(format!("bad width {val:?}")))?,
                "H" => {
                    h = val
                        .parse()
                        .map_err(|_| bad(format!("bad height {val:?}")))?
                }
                "F" => {
                    let (n, d) = val
                        .split_once(':')
                        .and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?)))
                        .filter(|&(n, d): &(u32, u32)| n > 0 && d > 0)
                        .ok_or_else(|| bad(format!("bad frame rate {val:?}")))?;
                    rate = (n, d);
                }
                "C" => {
                    if !matches!(val, "420jpeg" | "420paldv" | "420mpeg2" | "420") {
                        return Err(Error::new(
                            href,
                            ErrorKind::Unsupported {
                                detail: format!(
                                    "YUV4MPEG2 colour space C{val}: only 8-bit 4:2:0 is supported"
                                ),
                            },
                        ));
                    }
                }
                "X" => match val {
                    "COLORRANGE=FULL" => full_range = true,
                    "COLORRANGE=LIMITED" => full_range = false,
                    "COLORMATRIX=BT709" | "COLORSPACE=BT709" => matrix = Matrix::Bt709,
                    _ => {}
                },
                "I" | "A" => {}
                _ => return Err(bad(format!("unknown YUV4MPEG2 header field {f:?}"))),
            }
        }
        if w == 0 || h == 0 {
            return Err(bad(format!("missing or zero frame size ({w}x{h})")));
        }
        crate::picture::limits::check_pixels(href, w, h, max_pixels)?;
        let data_start = header.len() as u64 + 1;
        let mut info = VideoInfo {
            width: w,
            height: h,
            format: PixelFormat::Yuv420,
            rate,
            frames: None,
            full_range,
            matrix,
            codec: "rawvideo".into(),
            container: "yuv4mpegpipe".into(),
            decoded_format: "yuv420p".into(),
            ..VideoInfo::default()
        };
        let per_frame = info.frame_bytes() + 6; // "FRAME\n" + planes
        let body = len - data_start;
        if body.is_multiple_of(per_frame) {
            info.frames = Some(body / per_frame);
            info.duration = Some((body / per_frame) as f64 * info.frame_duration());
        }
        Ok(Y4m {
            href: href.into(),
            reader,
            info,
            data_start,
            next: 0,
            line: Vec::with_capacity(64),
        })
    }

    fn err(&self, detail: String) -> Error {
        Error::new(self.href.clone(), ErrorKind::Video { detail })
    }

    /// Reads a `FRAME` line; false at a clean end of file.
    fn frame_header(&mut self) -> Result<bool> {
        let mut line = std::mem::take(&mut self.line);
        let got = read_line_into(&mut self.reader, MAX_HEADER, &mut line);
        let found = line.starts_with(b"FRAME");
        self.line = line;
        match got.map_err(|e| self.err(format!("frame {}: {e}", self.next)))? {
            false => Ok(false),
            true if found => Ok(true),
            true => Err(self.err(format!("frame {}: expected a FRAME line", self.next))),
        }
    }
}

impl FrameSource for Y4m {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn read_frame(&mut self, buf: &mut [u8]) -> Result<Option<FrameTime>> {
        if !self.frame_header()? {
            return Ok(None);
        }
        let n = read_up_to(&mut self.reader, buf)
            .map_err(|e| self.err(format!("frame {}: {e}", self.next)))?;
        if n < buf.len() {
            return Err(self.err(format!(
                "frame {} is truncated: {n} of {} bytes",
                self.next,
                buf.len()
            )));
        }
        let index = self.next;
        self.next += 1;
        Ok(Some(FrameTime {
            index,
            time: index as f64 * self.info.frame_duration(),
        }))
    }

    fn seek(&mut self, seconds: f64) -> Result<()> {
        let index = index_at(&self.info, seconds);
        let io = |e: std::io::Error| e.to_string();
        self.reader
            .seek(SeekFrom::Start(self.data_start))
            .map_err(|e| self.err(io(e)))?;
        self.next = 0;
        let skip = self.info.frame_bytes() as i64;
        while self.next < index {
            if !self.frame_header()? {
                // Past the last frame: the next read is the end.
                return Ok(());
            }
            self.reader
                .seek_relative(skip)
                .map_err(|e| self.err(io(e)))?;
            self.next += 1;
        }
        Ok(())
    }
}

/// Reads one `\n`-terminated line without the `\n`, refusing lines over `max` bytes. `None` at
/// end of file; an unterminated last line is an error.
fn read_line(r: &mut impl BufRead, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    Ok(read_line_into(r, max, &mut line)?.then_some(line))
}

/// [`read_line`] into a reused buffer; false at end of file.
fn read_line_into(r: &mut impl BufRead, max: usize, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let n = r.take(max as u64 + 1).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        let what = if n > max { "too long" } else { "truncated" };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("header line {what}"),
        ));
    }
    line.pop();
    Ok(true)
}

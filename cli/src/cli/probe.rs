//! `texcache probe FILE... [--json]`: what texcache makes of each file, without caching it.

use std::path::{Path, PathBuf};
use texcache::probe::Probe;
use texcache::ByteSize;
use texcache::{Error, ErrorKind};

/// Probes every file; prints a line each (or one JSON array). Fails, after printing all of
/// them, if any file gave an error.
pub fn run(files: &[PathBuf], config: Option<&Path>, json: bool) -> crate::error::Result<()> {
    let max_pixels = super::load_config(config)?.loader.max_pixels;
    let mut failed = 0;
    let mut out = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let got = texcache::probe::probe(&name, file, max_pixels);
        failed += got.is_err() as usize;
        if json {
            let mut v = match &got {
                Ok(p) => serde_json::to_value(p).expect("a probe serialises"),
                Err(e) => serde_json::json!({ "kind": "error", "error": e.to_string() }),
            };
            v["file"] = name.into();
            out.push(v);
        } else {
            match got {
                Ok(p) => println!("{name}: {}", describe(&p)),
                Err(e) => println!("{name}: error: {e}"),
            }
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(out));
    }
    if failed > 0 {
        return Err(Error::from(ErrorKind::Config {
            file: PathBuf::from("probe"),
            line: None,
            message: format!("{failed} of {} file(s) could not be read", files.len()),
        })
        .into());
    }
    Ok(())
}

fn describe(p: &Probe) -> String {
    match p {
        Probe::Picture(p) => format!(
            "picture, {}, {}x{} (upright {}x{}, orientation {}), decoded {} = {}",
            p.format,
            p.width,
            p.height,
            p.upright_width,
            p.upright_height,
            p.orientation,
            p.pixel_format.name(),
            ByteSize(p.bytes)
        ),
        Probe::Video(v) => {
            let i = &v.info;
            let rate = i.rate.0 as f64 / i.rate.1.max(1) as f64;
            let duration = i
                .duration
                .map_or("duration unknown".into(), |d| format!("{d:.3} s"));
            let frames = i
                .frames
                .map_or("frame count unknown".into(), |n| format!("{n} frames"));
            format!(
                "video, {} / {}, {}x{} {} (decoded as {}), {rate:.3} fps, {duration}, {frames}, \
                 rotation {}, {} a frame",
                i.container,
                i.codec,
                i.width,
                i.height,
                i.format.name(),
                i.decoded_format,
                i.rotation,
                ByteSize(v.frame_bytes)
            )
        }
    }
}

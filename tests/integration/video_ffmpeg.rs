//! Video through FFmpeg (feature `ffmpeg`, §4): the corpus's real encoded clips against
//! ffmpeg's own frame checksums, timestamps, seeking, looping, rotation, damaged files, and the
//! node's memory (queue, spare buffers, the decoder's own frames) to the byte.
#![cfg(feature = "ffmpeg")]

use crate::common;

use common::md5_hex;
use std::path::{Path, PathBuf};
use texcache::video::{State, VideoNode};
use texcache::ErrorKind;
use texcache::{Cache, PixelFormat};

fn dir() -> PathBuf {
    common::corpus().join("video").join("encoded")
}

fn video_cache(threaded: bool, queue_length: usize) -> Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir();
    cfg.video.threaded = threaded;
    cfg.video.queue_length = queue_length;
    cfg.stats.history_interval_ms = 0;
    Cache::new(cfg).unwrap()
}

/// A `.framemd5` file: per frame, its time in seconds (pts × time base) and its MD5.
fn framemd5(path: &Path) -> Vec<(f64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let (n, d) = text
        .lines()
        .find_map(|l| l.strip_prefix("#tb 0: "))
        .and_then(|t| t.trim().split_once('/'))
        .map(|(n, d)| (n.parse::<f64>().unwrap(), d.parse::<f64>().unwrap()))
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f[2].parse::<f64>().unwrap() * n / d, f[5].to_string())
        })
        .collect()
}

/// Every frame of a playing node: (index, time, MD5).
fn drain(node: &mut VideoNode) -> Vec<(u64, f64, String)> {
    let mut got = Vec::new();
    while let Some(f) = node.next_frame().unwrap() {
        got.push((f.index(), f.time(), md5_hex(f.data())));
    }
    got
}

/// The clips with 8-bit 4:2:0 frames, whose frames must equal ffmpeg's exactly; and those
/// texcache converts to 8-bit 4:2:0, equal to ffmpeg's own conversion (`*.yuv420p.framemd5`).
const NATIVE: [&str; 6] = [
    "testsrc2_640x360_h264.mp4",
    "testsrc2_640x360_hevc.mp4",
    "testsrc2_321x241_vp9.webm",
    "testsrc2_640x360_av1.mkv",
    "testsrc2_640x360_h264_rot90.mp4",
    "testsrc2_1920x1080_h264.mp4",
];
const CONVERTED: [&str; 2] = [
    "testsrc2_640x360_h264_10bit.mp4",
    "testsrc2_640x360_h264_444.mp4",
];

#[test]
fn every_frame_of_every_clip_matches_ffmpeg_with_its_timestamp() {
    let cases = NATIVE.iter().map(|n| (*n, format!("{n}.framemd5"))).chain(
        CONVERTED
            .iter()
            .map(|n| (*n, format!("{n}.yuv420p.framemd5"))),
    );
    for (name, reference) in cases {
        let want = framemd5(&dir().join(reference));
        for threaded in [true, false] {
            let cache = video_cache(threaded, 4);
            let mut node = cache.video(name).unwrap();
            assert_eq!(node.info().format, PixelFormat::Yuv420, "{name}");
            node.play().unwrap();
            let got = drain(&mut node);
            assert_eq!(got.len(), want.len(), "{name}: frame count");
            for (i, ((index, time, md5), (want_time, want_md5))) in
                got.iter().zip(&want).enumerate()
            {
                assert_eq!(*index, i as u64, "{name}: in order");
                // ffmpeg writes times in 1/rate; Matroska stores milliseconds.
                assert!(
                    (time - want_time).abs() < 1e-3,
                    "{name} frame {i}: {time} s"
                );
                assert_eq!(md5, want_md5, "{name} frame {i} (threaded {threaded})");
            }
            assert_eq!(node.stats().corrupt_packets, 0, "{name}");
        }
    }
}

#[test]
fn the_header_tells_size_rate_duration_codec_and_rotation() {
    let cache = video_cache(true, 4);
    let info = |name: &str| cache.video(name).unwrap().info().clone();
    let h264 = info("testsrc2_640x360_h264.mp4");
    assert_eq!(
        (
            h264.width,
            h264.height,
            h264.rate,
            h264.frames,
            h264.duration
        ),
        (640, 360, (30, 1), Some(60), Some(2.0))
    );
    assert_eq!((h264.codec.as_str(), h264.rotation), ("h264", 0));
    assert!(h264.container.contains("mp4"), "{}", h264.container);
    assert_eq!(h264.frame_bytes(), 640 * 360 + 2 * 320 * 180);
    let vp9 = info("testsrc2_321x241_vp9.webm");
    assert_eq!((vp9.width, vp9.height, vp9.rate), (321, 241, (25, 1)));
    assert_eq!(
        vp9.frame_bytes(),
        321 * 241 + 2 * 161 * 121,
        "odd sizes round chroma up"
    );
    assert_eq!(vp9.codec, "vp9");
    assert_eq!(info("testsrc2_640x360_hevc.mp4").codec, "hevc");
    assert!(info("testsrc2_640x360_av1.mkv").codec.contains("av1"));
    assert_eq!(
        info("testsrc2_640x360_h264_10bit.mp4").decoded_format,
        "yuv420p10le"
    );
    assert_eq!(
        info("testsrc2_640x360_h264_444.mp4").decoded_format,
        "yuv444p"
    );
    // The clip's display matrix turns it a quarter counterclockwise: 270 degrees clockwise,
    // FFmpeg's `rotate` tag for it. Displayed, it is 360 wide and 640 high.
    let rot = info("testsrc2_640x360_h264_rot90.mp4");
    assert_eq!(rot.rotation, 270);
    assert_eq!(rot.display_size(), (360, 640));
    assert_eq!(info("testsrc2_1920x1080_h264.mp4").frames, Some(120));
}

#[test]
fn seek_lands_on_the_first_frame_at_or_after_the_time() {
    let name = "testsrc2_640x360_h264.mp4";
    let want = framemd5(&dir().join(format!("{name}.framemd5")));
    for threaded in [true, false] {
        let cache = video_cache(threaded, 4);
        let mut node = cache.video(name).unwrap();
        node.play().unwrap();
        let first = node.next_frame().unwrap().unwrap();
        assert_eq!(first.index(), 0);
        drop(first);
        for (t, frame) in [
            (1.0, 30),
            (1.01, 31),
            (0.5, 15),
            (0.0, 0),
            (1.95, 59),
            (0.9999, 30),
        ] {
            node.seek(t);
            let f = node.next_frame().unwrap().unwrap();
            assert_eq!(
                (f.index(), md5_hex(f.data())),
                (frame, want[frame as usize].1.clone()),
                "seek {t}"
            );
            assert!(
                f.time() >= t - 1e-9 && f.time() < t + 1.0 / 30.0 + 1e-9,
                "seek {t}: {}",
                f.time()
            );
        }
        node.seek(5.0);
        assert!(
            node.next_frame().unwrap().is_none(),
            "past the end: the end of the stream"
        );
        node.seek(1.5);
        assert_eq!(
            node.next_frame().unwrap().unwrap().index(),
            45,
            "and back again"
        );
    }
}

#[test]
fn looping_starts_again_and_frame_at_follows_real_timestamps() {
    let name = "testsrc2_321x241_vp9.webm";
    let want = framemd5(&dir().join(format!("{name}.framemd5")));
    let cache = video_cache(true, 4);
    let mut node = cache.video(name).unwrap();
    node.set_looping(true);
    node.play().unwrap();
    for round in 0..3 {
        for (i, (_, md5)) in want.iter().enumerate() {
            let f = node.next_frame().unwrap().unwrap();
            assert_eq!(
                (f.index(), &md5_hex(f.data())),
                (i as u64, md5),
                "round {round}"
            );
        }
    }
    node.stop();
    node.set_looping(false);
    node.play().unwrap();
    // 25 frames a second: at 1.0 s frame 25 is due, the 25 before it were late.
    let f = node.frame_at(1.0).unwrap().unwrap();
    assert_eq!((f.index(), f.time()), (25, 1.0));
    assert_eq!(node.stats().dropped_frames, 25);
    assert!(node.frame_at(1.01).unwrap().is_none(), "nothing new is due");
    drop(f);
    assert_eq!(node.frame_at(1.05).unwrap().unwrap().index(), 26);
    assert_eq!(node.frame_at(100.0).unwrap().unwrap().index(), 49);
    assert!(node.frame_at(101.0).unwrap().is_none());
}

#[test]
fn memory_is_exact_the_decoder_counted_and_all_of_it_freed_on_stop() {
    let name = "testsrc2_640x360_h264.mp4";
    let fb = 640 * 360 + 2 * 320 * 180;
    let cache = video_cache(true, 5);
    let mut node = cache.video(name).unwrap();
    let s = cache.stats().video;
    assert_eq!(
        (s.cpu_bytes, s.decoder_bytes),
        (0, 0),
        "opened: header only"
    );
    node.play().unwrap();
    node.wait_full();
    let s = cache.stats();
    assert_eq!(
        s.video.cpu_bytes,
        5 * fb,
        "a full queue holds exactly queue_length frames"
    );
    assert_eq!(s.video.queued_frames, 5);
    // The decoder's own frames: H.264 keeps reference frames in its pool of 640x360 planes
    // (each a little larger than a frame, for alignment and edges).
    let decoder = s.video.decoder_bytes;
    assert!(
        decoder >= 2 * fb && decoder < 64 * fb,
        "decoder_bytes {decoder}"
    );
    assert_eq!(
        s.total_bytes(),
        s.cpu.used + s.gpu.used + s.video.cpu_bytes + s.video.gpu_bytes + decoder
    );
    let held: Vec<_> = (0..3)
        .map(|_| node.next_frame().unwrap().unwrap())
        .collect();
    node.wait_full();
    assert_eq!(
        cache.stats().video.cpu_bytes,
        5 * fb,
        "held frames keep their slots"
    );
    drop(held);
    // To the end: a stream that does not loop frees its spare buffers as the consumer takes
    // the last frames.
    while node.next_frame().unwrap().is_some() {}
    let s = cache.stats().video;
    assert_eq!((s.cpu_bytes, s.queued_frames), (0, 0));
    assert!(node.stats().end_of_stream);
    node.stop();
    assert_eq!(node.state(), State::Stopped);
    let s = cache.stats().video;
    assert_eq!((s.cpu_bytes, s.gpu_bytes, s.decoder_bytes), (0, 0, 0));
    // Played again after stop: from the start, the decoder counted again.
    node.play().unwrap();
    assert_eq!(node.next_frame().unwrap().unwrap().index(), 0);
    assert!(cache.stats().video.decoder_bytes > 0);
    drop(node);
    assert_eq!(cache.stats().video.nodes, 0);
}

#[test]
fn damaged_and_foreign_files_are_typed_errors_and_damage_is_skipped() {
    let cache = video_cache(true, 4);
    // 2 KiB of the mdat overwritten: the damaged packet is skipped and counted, the rest plays.
    let mut node = cache.video("x_corrupt_mdat_h264.mp4").unwrap();
    node.play().unwrap();
    let frames = drain(&mut node);
    let corrupt = node.stats().corrupt_packets;
    assert!(corrupt >= 1, "counted");
    assert!(
        frames.len() as u64 + corrupt >= 60 && frames.len() >= 50,
        "{} frames",
        frames.len()
    );
    // Cut short: the frames before the cut, then an error naming the frame, then the end.
    let want = framemd5(&dir().join("testsrc2_640x360_h264.mp4.framemd5"));
    for threaded in [true, false] {
        let cache = video_cache(threaded, 4);
        let mut node = cache.video("x_truncated_h264.mp4").unwrap();
        node.play().unwrap();
        let mut n = 0;
        let e = loop {
            match node.next_frame() {
                Ok(Some(f)) => {
                    assert_eq!(md5_hex(f.data()), want[n].1, "frame {n} before the cut");
                    n += 1;
                }
                Ok(None) => panic!("a cut-short file ended without an error after {n} frames"),
                Err(e) => break e,
            }
        };
        assert!((20..60).contains(&n), "{n} frames");
        let text = e.to_string();
        assert!(
            matches!(e.kind(), ErrorKind::Corrupt { .. })
                && text.starts_with("x_truncated_h264.mp4")
                && text.contains(&format!("frame {n}")),
            "{text}"
        );
        assert!(
            node.next_frame().unwrap().is_none(),
            "then the stream has ended"
        );
    }
    // Not a video at all, an empty file, noise, a still picture, an audio file.
    let tmp = tempfile::tempdir().unwrap();
    let mut wav = b"RIFF\x24\x08\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data\0\x08\0\0".to_vec();
    wav.resize(wav.len() + 2048, 0);
    let mut noise = vec![0u8; 4096];
    let mut x = 12345u32;
    for b in &mut noise {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    for (name, bytes) in [
        ("empty.mp4", vec![]),
        ("noise.mkv", noise),
        ("tone.wav", wav),
    ] {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    std::fs::copy(
        dir().join("x_not_a_video.mp4"),
        tmp.path().join("x_not_a_video.mp4"),
    )
    .unwrap();
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    let cache = Cache::new(cfg).unwrap();
    for name in ["x_not_a_video.mp4", "empty.mp4", "noise.mkv", "tone.wav"] {
        match cache.video(name) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unsupported { .. } | ErrorKind::Video { .. }
                ) =>
            {
                assert!(e.to_string().starts_with(name), "{e}")
            }
            other => panic!("{name}: {:?}", other.map(|n| n.info().clone())),
        }
    }
    let e = cache.video("tone.wav").err().unwrap().to_string();
    assert!(e.contains("no video stream"), "{e}");
}

#[test]
fn max_pixels_refuses_a_stream_from_its_header() {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir();
    cfg.loader.max_pixels = 1920 * 1080 - 1;
    let cache = Cache::new(cfg).unwrap();
    match cache
        .video("testsrc2_1920x1080_h264.mp4")
        .map_err(|e| e.kind().clone())
    {
        Err(ErrorKind::TooManyPixels { width, height, .. }) => {
            assert_eq!((width, height), (1920, 1080))
        }
        other => panic!("{:?}", other.map(|n| n.info().clone())),
    }
    assert!(cache.video("testsrc2_640x360_h264.mp4").is_ok());
}

/// BT.601 limited range, as texcache's shader converts (frames of the corpus clips say
/// nothing of their matrix and are under 720 lines).
#[cfg(feature = "gpu")]
fn bt601(y: u8, u: u8, v: u8) -> [f64; 3] {
    let yy = (y as f64 - 16.0) * 255.0 / 219.0;
    let (cb, cr) = (
        (u as f64 - 128.0) * 255.0 / 224.0,
        (v as f64 - 128.0) * 255.0 / 224.0,
    );
    [
        yy + 1.402 * cr,
        yy - 0.344136 * cb - 0.714136 * cr,
        yy + 1.772 * cb,
    ]
}

#[cfg(feature = "gpu")]
#[test]
fn to_rgba_turns_a_rotated_clip_upright() {
    let Some(gpu) = common::gpu() else { return };
    let cache = video_cache(true, 2);
    cache.bind_gpu(gpu.clone());
    let mut node = cache.video("testsrc2_640x360_h264_rot90.mp4").unwrap();
    node.play().unwrap();
    let f = node.next_frame().unwrap().unwrap();
    let t = node.upload(&gpu, &f).unwrap();
    let rgba = t.to_rgba().unwrap();
    assert_eq!(
        (rgba.width(), rgba.height()),
        (360, 640),
        "displayed upright"
    );
    let got = texcache::gpu::read_back_raw(&gpu, &rgba, 0).unwrap();
    let [y, u, v] = f.planes().unwrap();
    // 270 degrees clockwise: displayed pixel (dx, dy) is coded pixel (639 - dy, dx).
    let mut worst = 0f64;
    for dy in 0..640usize {
        for dx in 0..360usize {
            let (sx, sy) = (639 - dy, dx);
            let c = (sy / 2) * 320 + sx / 2;
            let want = bt601(y[sy * 640 + sx], u[c], v[c]);
            for ch in 0..3 {
                let g = got[(dy * 360 + dx) * 4 + ch] as f64;
                worst = worst.max((g - want[ch].clamp(0.0, 255.0)).abs());
            }
        }
    }
    assert!(worst <= 2.0, "the upright picture differs by {worst}");
    rgba.destroy();
}

#[test]
fn encoded_samples_play_back_whole() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, w, h) in [("clip.mp4", 320, 240), ("small.mkv", 162, 90)] {
        texcache::testing::samples::write_encoded(&tmp.path().join(name), w, h, 45).unwrap();
        let mut cfg = texcache::Config::default();
        cfg.mediadir = tmp.path().into();
        let cache = Cache::new(cfg).unwrap();
        let mut node = cache.video(name).unwrap();
        let info = node.info().clone();
        assert_eq!(
            (info.width, info.height, info.rate),
            (w, h, (30, 1)),
            "{name}"
        );
        assert!(
            ["h264", "mpeg4"].contains(&info.codec.as_str()),
            "{}",
            info.codec
        );
        node.play().unwrap();
        let got = drain(&mut node);
        assert_eq!(got.len(), 45, "{name}");
        for (i, (index, time, _)) in got.iter().enumerate() {
            assert_eq!(*index, i as u64);
            assert!(
                (time - i as f64 / 30.0).abs() < 1e-3,
                "{name} frame {i}: {time}"
            );
        }
    }
    for (name, w) in [("x.nosuchformat", 16), ("odd.mp4", 15)] {
        let e = texcache::testing::samples::write_encoded(&tmp.path().join(name), w, 16, 1)
            .unwrap_err();
        assert!(e.to_string().contains(name), "{e}");
    }
}

/// `data` (a YUV 4:2:0 frame of `w`x`h`) as packed RGB by FFmpeg's swscale, with the matrix
/// (`SWS_CS_*`) and range given: the reference for `Frame::to_rgb`. Point sampling of chroma,
/// as texcache's conversion (GPU and CPU) samples each 2x2 block's one chroma sample.
fn swscale_rgb(data: &[u8], w: u32, h: u32, matrix: i32, full_range: bool) -> Vec<u8> {
    use ffmpeg_sys_next as ff;
    let (wi, hi) = (w as i32, h as i32);
    let cw = w.div_ceil(2) as usize;
    let (y, uv) = data.split_at(w as usize * h as usize);
    let (u, v) = uv.split_at(cw * h.div_ceil(2) as usize);
    let mut out = vec![0u8; w as usize * h as usize * 3];
    // SAFETY: the planes and strides describe `data` exactly, the output holds w*h*3 bytes,
    // and the context is freed before returning.
    unsafe {
        let ctx = ff::sws_getContext(
            wi,
            hi,
            ff::AVPixelFormat::AV_PIX_FMT_YUV420P,
            wi,
            hi,
            ff::AVPixelFormat::AV_PIX_FMT_RGB24,
            ff::SWS_POINT | ff::SWS_ACCURATE_RND | ff::SWS_FULL_CHR_H_INT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null(),
        );
        assert!(!ctx.is_null());
        ff::sws_setColorspaceDetails(
            ctx,
            ff::sws_getCoefficients(matrix),
            full_range as i32,
            ff::sws_getCoefficients(ff::SWS_CS_DEFAULT),
            1,
            0,
            1 << 16,
            1 << 16,
        );
        let src = [y.as_ptr(), u.as_ptr(), v.as_ptr(), std::ptr::null()];
        let src_stride = [wi, cw as i32, cw as i32, 0];
        let dst = [
            out.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ];
        let dst_stride = [wi * 3, 0, 0, 0];
        let rows = ff::sws_scale(
            ctx,
            src.as_ptr(),
            src_stride.as_ptr(),
            0,
            hi,
            dst.as_ptr(),
            dst_stride.as_ptr(),
        );
        ff::sws_freeContext(ctx);
        assert_eq!(rows, hi);
    }
    out
}

/// (max, mean) absolute difference of two equal-length byte arrays.
fn difference(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    (max, sum as f64 / a.len() as f64)
}

/// `Frame::to_rgb` converts with the stream's matrix and range, as FFmpeg does (a BT.709 HD
/// clip, BT.601 ones, a full-range Y4M), and turns a rotated clip upright.
#[test]
fn to_rgb_uses_the_streams_matrix_range_and_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    // The corpus Y4M, marked full range.
    let y4m = std::fs::read(common::corpus().join("video/testsrc2_320x240_60f.y4m")).unwrap();
    let eol = y4m.iter().position(|&b| b == b'\n').unwrap();
    let full = [&y4m[..eol], b" XCOLORRANGE=FULL", &y4m[eol..]].concat();
    std::fs::write(tmp.path().join("full.y4m"), full).unwrap();
    let cases = [
        (dir().join("testsrc2_1920x1080_h264.mp4"), 1, false), // SWS_CS_ITU709
        (dir().join("testsrc2_640x360_h264.mp4"), 5, false),   // SWS_CS_ITU601
        (tmp.path().join("full.y4m"), 5, true),
    ];
    for (path, matrix, full_range) in cases {
        let mut cfg = texcache::Config::default();
        cfg.mediadir = path.parent().unwrap().to_path_buf();
        cfg.stats.history_interval_ms = 0;
        let cache = Cache::new(cfg).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut node = cache.video(&name).unwrap();
        assert_eq!(node.info().full_range, full_range, "{name}");
        node.play().unwrap();
        let f = node.next_frame().unwrap().unwrap();
        let want = swscale_rgb(f.data(), f.width(), f.height(), matrix, full_range);
        let (max, mean) = difference(&f.to_rgb(), &want);
        assert!(
            max <= 2 && mean < 0.6,
            "{name}: up to {max} levels from swscale, {mean:.2} on average"
        );
    }
    // The rotated clip: its frames turned 270 degrees clockwise, 360x640.
    let cache = video_cache(true, 2);
    let mut node = cache.video("testsrc2_640x360_h264_rot90.mp4").unwrap();
    node.play().unwrap();
    let f = node.next_frame().unwrap().unwrap();
    assert_eq!(f.display_size(), (360, 640));
    let coded = swscale_rgb(f.data(), 640, 360, 5, false);
    let rgb = f.to_rgb();
    assert_eq!(rgb.len(), 360 * 640 * 3);
    // Display pixel (x, y) shows coded pixel (639 - y, x).
    let mut turned = vec![0u8; rgb.len()];
    for y in 0..640 {
        for x in 0..360 {
            let s = (x * 640 + (639 - y)) * 3;
            turned[(y * 360 + x) * 3..][..3].copy_from_slice(&coded[s..s + 3]);
        }
    }
    let (max, mean) = difference(&rgb, &turned);
    assert!(max <= 2 && mean < 0.6, "rotated: {max}, {mean:.2}");
}

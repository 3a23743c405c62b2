//! Video nodes (§4): frames against ffmpeg's checksums, byte-exact stats in every state,
//! prompt shutdown, bad files, and flat memory over many play/stop cycles.

use crate::common;

use common::md5_hex;
use std::path::Path;
use std::time::Duration;
use texcache::video::State;
use texcache::ErrorKind;
use texcache::{Cache, PixelFormat};

fn video_cache(dir: &Path, threaded: bool, queue_length: usize) -> Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.to_path_buf();
    cfg.video.threaded = threaded;
    cfg.video.queue_length = queue_length;
    Cache::new(cfg).unwrap()
}

/// The MD5s of a `.framemd5` file, in frame order.
fn framemd5(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

const Y4M: &str = "testsrc2_320x240_60f.y4m";
const FB: u64 = 320 * 240 + 2 * 160 * 120;

#[test]
fn every_y4m_frame_matches_ffmpeg_threaded_and_not() {
    let dir = common::corpus().join("video");
    let want = framemd5(&dir.join(format!("{Y4M}.framemd5")));
    assert_eq!(want.len(), 60);
    for threaded in [true, false] {
        let cache = video_cache(&dir, threaded, 8);
        let mut node = cache.video(Y4M).unwrap();
        let info = node.info().clone();
        assert_eq!(
            (info.width, info.height, info.format, info.rate, info.frames),
            (320, 240, PixelFormat::Yuv420, (30, 1), Some(60))
        );
        assert_eq!(info.frame_bytes(), FB);
        node.play().unwrap();
        let mut got = Vec::new();
        while let Some(f) = node.next_frame().unwrap() {
            assert_eq!(f.index(), got.len() as u64, "in order");
            got.push(md5_hex(f.data()));
        }
        assert_eq!(got, want, "threaded={threaded}");
        assert!(node.next_frame().unwrap().is_none(), "end of stream stays");
    }
}

#[test]
fn seek_flushes_and_continues_from_the_frame() {
    let dir = common::corpus().join("video");
    let want = framemd5(&dir.join(format!("{Y4M}.framemd5")));
    for threaded in [true, false] {
        let cache = video_cache(&dir, threaded, 4);
        let mut node = cache.video(Y4M).unwrap();
        node.play().unwrap();
        node.wait_full();
        let f = node.next_frame().unwrap().unwrap();
        assert_eq!(f.index(), 0);
        drop(f);
        node.seek(42.0 / 30.0);
        for i in 42..45 {
            let f = node.next_frame().unwrap().unwrap();
            assert_eq!(
                (f.index(), md5_hex(f.data())),
                (i, want[i as usize].clone())
            );
        }
        node.seek(3.0 / 30.0);
        assert_eq!(node.next_frame().unwrap().unwrap().index(), 3);
        // Between two frames: the later one (§4: the first whose time is at least t).
        node.seek(1.41);
        let f = node.next_frame().unwrap().unwrap();
        assert_eq!((f.index(), f.time()), (43, 43.0 / 30.0));
        drop(f);
        node.seek(60.0);
        assert!(
            node.next_frame().unwrap().is_none(),
            "past the end: the end"
        );
        let s = cache.stats().video;
        assert!(
            s.cpu_bytes <= 4 * FB,
            "never more than queue_length buffers"
        );
    }
}

#[test]
fn looping_starts_again() {
    let tmp = tempfile::tempdir().unwrap();
    texcache::testing::samples::write_y4m(&tmp.path().join("c.y4m"), 16, 8, 10).unwrap();
    for threaded in [true, false] {
        let cache = video_cache(tmp.path(), threaded, 3);
        let mut node = cache.video("c.y4m").unwrap();
        node.set_looping(true);
        node.play().unwrap();
        let got: Vec<u64> = (0..25)
            .map(|_| node.next_frame().unwrap().unwrap().index())
            .collect();
        let want: Vec<u64> = (0..25).map(|i| i % 10).collect();
        assert_eq!(got, want, "threaded={threaded}");
    }
}

#[test]
fn animations_against_ffmpeg() {
    let dir = common::corpus().join("video");
    for name in ["testsrc2_160x120_30f.gif", "testsrc2_160x120_30f.png"] {
        let want = framemd5(&dir.join(format!("{name}.framemd5")));
        let cache = video_cache(&dir, true, 4);
        let mut node = cache.video(name).unwrap();
        assert_eq!(
            (node.info().width, node.info().height, node.info().format),
            (160, 120, PixelFormat::Rgba8)
        );
        node.play().unwrap();
        let mut got = Vec::new();
        while let Some(f) = node.next_frame().unwrap() {
            assert_eq!(f.data().len(), 160 * 120 * 4);
            got.push(md5_hex(f.data()));
        }
        assert_eq!(got.len(), want.len(), "{name}: frame count");
        let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
        eprintln!(
            "{name}: {same} of {} frames identical to ffmpeg",
            want.len()
        );
        assert_eq!(same, want.len(), "{name}: frames differ from ffmpeg's");
    }
}

#[test]
fn stats_are_exact_in_every_state_threaded() {
    let dir = common::corpus().join("video");
    let cache = video_cache(&dir, true, 4);
    let mut node = cache.video(Y4M).unwrap();
    let v = |c: &Cache| {
        let s = c.stats().video;
        (
            s.nodes,
            s.playing,
            s.queued_frames,
            s.cpu_bytes,
            s.gpu_bytes,
        )
    };
    assert_eq!(v(&cache), (1, 0, 0, 0, 0), "opened: header only");
    node.play().unwrap();
    node.wait_full();
    assert_eq!(v(&cache), (1, 1, 4, 4 * FB, 0), "queue full");
    let taken: Vec<_> = (0..3)
        .map(|_| node.next_frame().unwrap().unwrap())
        .collect();
    // Held frames keep their slots: the decoder cannot run ahead of the consumer's memory.
    assert_eq!(v(&cache), (1, 1, 1, 4 * FB, 0), "three taken and held");
    assert_eq!(node.stats().held_frames, 3);
    drop(taken);
    node.wait_full();
    assert_eq!(v(&cache), (1, 1, 4, 4 * FB, 0), "refilled from the pool");
    node.pause().unwrap();
    assert_eq!(v(&cache).1, 0, "paused is not playing");
    node.play().unwrap();
    let mut n = 3;
    while node.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 60);
    let st = node.stats();
    assert!(st.end_of_stream);
    // §4: at the end of a stream that does not loop, the spare buffers are freed.
    assert_eq!(v(&cache), (1, 1, 0, 0, 0), "end of stream");
    node.stop();
    assert_eq!(node.state(), State::Stopped);
    assert_eq!(v(&cache), (1, 0, 0, 0, 0), "stopped");
    drop(node);
    assert_eq!(v(&cache), (0, 0, 0, 0, 0), "closed");
}

#[test]
fn stats_are_exact_in_every_state_not_threaded() {
    let dir = common::corpus().join("video");
    let cache = video_cache(&dir, false, 4);
    let mut node = cache.video(Y4M).unwrap();
    let v = |c: &Cache| {
        let s = c.stats().video;
        (s.nodes, s.playing, s.queued_frames, s.cpu_bytes)
    };
    assert_eq!(v(&cache), (1, 0, 0, 0));
    node.play().unwrap();
    node.wait_full();
    assert_eq!(
        v(&cache),
        (1, 1, 0, 0),
        "nothing decoded before it is asked for"
    );
    let f = node.next_frame().unwrap().unwrap();
    assert_eq!(v(&cache), (1, 1, 0, FB), "one frame buffer");
    drop(f);
    for i in 1..60 {
        assert_eq!(node.next_frame().unwrap().unwrap().index(), i);
        assert_eq!(v(&cache).3, FB, "still one buffer in all");
    }
    assert!(node.next_frame().unwrap().is_none());
    assert_eq!(
        v(&cache),
        (1, 1, 0, 0),
        "end of stream: the spare buffer is freed"
    );
    node.stop();
    assert_eq!(v(&cache), (1, 0, 0, 0));
}

#[test]
fn a_frame_held_across_stop_stays_valid_then_frees() {
    let dir = common::corpus().join("video");
    let cache = video_cache(&dir, true, 2);
    let mut node = cache.video(Y4M).unwrap();
    node.play().unwrap();
    let f = node.next_frame().unwrap().unwrap();
    node.stop();
    assert_eq!(
        cache.stats().video.cpu_bytes,
        FB,
        "only the held frame's memory is left"
    );
    assert_eq!(f.data().len() as u64, FB);
    drop(f);
    assert_eq!(cache.stats().video.cpu_bytes, 0);
}

#[test]
fn asking_for_a_frame_with_every_slot_held_is_an_error_not_a_hang() {
    let dir = common::corpus().join("video");
    let cache = video_cache(&dir, true, 3);
    let node = cache.video(Y4M).unwrap();
    let (node, held, err) = common::within(30, "next_frame with every slot held", move || {
        let mut node = node;
        node.play().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| node.next_frame().unwrap().unwrap())
            .collect();
        let err = node.next_frame().err();
        (node, held, err)
    });
    let err = err.expect("an error, since no slot is free");
    assert!(matches!(err.kind(), ErrorKind::Video { .. }), "{err}");
    assert!(err.to_string().contains("drop one"), "{err}");
    // Dropping one frees a slot: playback goes on.
    let mut node = node;
    drop(held);
    assert_eq!(node.next_frame().unwrap().unwrap().index(), 3);
}

#[test]
fn dropping_a_node_whose_decoder_waits_on_a_full_queue_is_prompt() {
    let dir = common::corpus().join("video");
    let cache = video_cache(&dir, true, 2);
    let mut node = cache.video(Y4M).unwrap();
    node.play().unwrap();
    node.wait_full(); // the decoder now blocks on the full queue
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(node);
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "drop did not return: the decoder thread was not woken"
    );
    assert_eq!(cache.stats().video.cpu_bytes, 0);
}

#[test]
fn the_playback_clock_drops_late_frames() {
    let dir = common::corpus().join("video");
    for threaded in [false, true] {
        let cache = video_cache(&dir, threaded, 8);
        let mut node = cache.video(Y4M).unwrap();
        node.play().unwrap();
        assert_eq!(node.frame_at(0.0).unwrap().unwrap().index(), 0);
        assert!(
            node.frame_at(0.01).unwrap().is_none(),
            "frame 1 is not due yet"
        );
        // 30 fps: at 0.1 s frame 3 is due; 1 and 2 are late.
        let f = node.frame_at(0.1).unwrap().unwrap();
        assert_eq!(f.index(), 3);
        assert_eq!(node.stats().dropped_frames, 2);
        drop(f);
        // Past the end: the last frame, then nothing.
        assert_eq!(node.frame_at(100.0).unwrap().unwrap().index(), 59);
        assert!(node.frame_at(101.0).unwrap().is_none());
    }
}

#[test]
fn bad_video_files_give_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(common::corpus().join("video").join(Y4M)).unwrap();
    let header_len = good.iter().position(|&b| b == b'\n').unwrap() + 1;
    let one_frame = header_len + 6 + FB as usize;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.y4m", vec![]),
        ("text.y4m", b"hello, world\n".to_vec()),
        ("nosize.y4m", b"YUV4MPEG2 F30:1\nFRAME\n".to_vec()),
        ("badsize.y4m", b"YUV4MPEG2 Wabc H10\n".to_vec()),
        ("c444.y4m", b"YUV4MPEG2 W16 H16 C444\n".to_vec()),
        ("c420p10.y4m", b"YUV4MPEG2 W16 H16 C420p10\n".to_vec()),
        ("unterminated.y4m", b"YUV4MPEG2 W16 H16".to_vec()),
        (
            "longheader.y4m",
            [b"YUV4MPEG2 ".as_slice(), &[b'X'; 10000]].concat(),
        ),
        (
            "still.png",
            std::fs::read(common::corpus().join("pngsuite/basn2c08.png")).unwrap(),
        ),
    ];
    let cache = video_cache(tmp.path(), true, 4);
    for (name, bytes) in &cases {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
        match cache.video(name) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Video { .. }
                        | ErrorKind::Unsupported { .. }
                        | ErrorKind::Corrupt { .. }
                ) =>
            {
                assert!(e.to_string().contains(name), "{e}")
            }
            other => panic!("{name}: {:?}", other.map(|n| n.info().clone())),
        }
    }
    assert!(matches!(
        cache.video("missing.y4m"),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound { .. })
    ));
    assert!(matches!(cache.video("."), Err(e) if matches!(e.kind(), ErrorKind::NotAFile { .. })));

    // Truncated in the middle of frame 2; a bad FRAME marker at frame 1.
    std::fs::write(tmp.path().join("trunc.y4m"), &good[..one_frame + 6 + 1000]).unwrap();
    let mut marker = good[..one_frame * 2 - header_len].to_vec();
    marker[one_frame..one_frame + 5].copy_from_slice(b"FRAMX");
    std::fs::write(tmp.path().join("marker.y4m"), &marker).unwrap();
    for threaded in [true, false] {
        let cache = video_cache(tmp.path(), threaded, 4);
        for name in ["trunc.y4m", "marker.y4m"] {
            let mut node = cache.video(name).unwrap();
            node.play().unwrap();
            assert_eq!(node.next_frame().unwrap().unwrap().index(), 0);
            let e = node.next_frame().unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::Video { .. }) && e.to_string().contains("frame 1"),
                "{e}"
            );
            assert!(
                node.next_frame().unwrap().is_none(),
                "then the stream has ended"
            );
            node.stop();
            assert_eq!(cache.stats().video.cpu_bytes, 0);
        }
    }
}

#[cfg(feature = "gpu")]
#[test]
fn frames_upload_into_one_texture_and_convert_to_rgb() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let dir = common::corpus().join("video");
    let cache = video_cache(&dir, true, 4);
    cache.bind_gpu(gpu.clone());
    let mut node = cache.video(Y4M).unwrap();
    node.play().unwrap();
    let mut texture_ptr = None;
    for _ in 0..5 {
        let f = node.next_frame().unwrap().unwrap();
        let t = node.upload(&gpu, &f).unwrap();
        let id = t as *const texcache::video::VideoTexture;
        assert_eq!(*texture_ptr.get_or_insert(id), id, "one texture, reused");
        // The planes, read back: Y on top, U and V side by side below.
        let back = texcache::gpu::read_back_raw(&gpu, t.texture(), 0).unwrap();
        let [y, u, v] = f.planes().unwrap();
        assert_eq!(&back[..320 * 240], y);
        for row in 0..120 {
            let at = 320 * 240 + row * 320;
            assert_eq!(&back[at..at + 160], &u[row * 160..][..160]);
            assert_eq!(&back[at + 160..at + 320], &v[row * 160..][..160]);
        }
        // RGB on the GPU against BT.601 limited range on the CPU.
        let rgba = t.to_rgba().unwrap();
        let rgb = texcache::gpu::read_back_raw(&gpu, &rgba, 0).unwrap();
        let mut worst = 0f64;
        for py in 0..240 {
            for px in 0..320 {
                let yy = (y[py * 320 + px] as f64 - 16.0) * 255.0 / 219.0;
                let c = (py / 2) * 160 + px / 2;
                let cb = (u[c] as f64 - 128.0) * 255.0 / 224.0;
                let cr = (v[c] as f64 - 128.0) * 255.0 / 224.0;
                let want = [
                    yy + 1.402 * cr,
                    yy - 0.344136 * cb - 0.714136 * cr,
                    yy + 1.772 * cb,
                ];
                for ch in 0..3 {
                    let g = rgb[(py * 320 + px) * 4 + ch] as f64;
                    worst = worst.max((g - want[ch].clamp(0.0, 255.0)).abs());
                }
            }
        }
        assert!(worst <= 2.0, "RGB differs from BT.601 by {worst}");
        rgba.destroy();
    }
    assert_eq!(cache.stats().video.gpu_bytes, FB);
    node.stop();
    assert_eq!(cache.stats().video.gpu_bytes, 0, "stop frees the texture");
}

#[test]
fn a_trace_seeks_a_node_and_bad_seek_lines_name_the_line() {
    use texcache::trace::{Replayer, Trace};
    let dir = common::corpus().join("video");
    let cache = video_cache(&dir, true, 4);
    let text = format!("video v {Y4M}\nplay v\nnext v\nseek v 1.41\nnext v 2\n");
    let trace = Trace::parse(&text, "seek.trace").unwrap();
    let mut r = Replayer::new(&cache);
    r.run(&trace, |_, _| {}).unwrap();
    let node = &cache.video_nodes()[0];
    // 1.41 s lands on frame 43 (1.4333 s); two frames taken from there: 43 and 44.
    assert_eq!(node.position, 44.0 / 30.0);
    assert_eq!(node.next_frame, 45);
    for bad in ["seek v", "seek v -1", "seek v soon", "seek v inf"] {
        let e = Trace::parse(&format!("video v {Y4M}\n{bad}\n"), "bad.trace").unwrap_err();
        assert!(e.to_string().starts_with("bad.trace:2"), "{bad}: {e}");
    }
}

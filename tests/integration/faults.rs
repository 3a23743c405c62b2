//! Faults from outside: files replaced, deleted or truncated under a running cache, and
//! symlinks swapped in under `confine`. Each gives the cached copy or a typed error naming the
//! href; the cache stays consistent and usable.

use crate::common;

use texcache::Cache;
use texcache::ErrorKind;

#[test]
fn replaced_or_deleted_files_keep_their_cached_copy_until_removed() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 2, 2);
    common::png(tmp.path(), "b.png", 3, 3);
    let cache = common::cache(tmp.path(), 1 << 20);
    let a = cache.bitmap("a.png").unwrap();
    let before = a.pixels().to_vec();
    drop(cache.bitmap("b.png").unwrap());

    // Replaced (a new file under the same name) and deleted behind the cache's back.
    common::png(tmp.path(), "a.png", 4, 4);
    std::fs::remove_file(tmp.path().join("b.png")).unwrap();
    let again = cache.bitmap("a.png").unwrap();
    assert!(
        texcache::Handle::ptr_eq(&a, &again),
        "still the cached copy"
    );
    assert_eq!((again.width(), again.pixels()), (2, before.as_slice()));
    assert_eq!(
        cache.bitmap("b.png").unwrap().width(),
        3,
        "deleted: still cached"
    );
    assert_eq!(cache.stats().cpu.misses, 2);

    // `remove` makes the next acquire load the file as it is now; the old copy lives on in
    // the handles that hold it.
    assert!(cache.remove("a.png") && cache.remove("b.png"));
    assert_eq!(cache.bitmap("a.png").unwrap().width(), 4);
    assert_eq!(a.width(), 2);
    match cache.bitmap("b.png") {
        Err(e) if matches!(e.kind(), ErrorKind::NotFound { .. }) => {
            assert!(e.to_string().contains("b.png"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    drop((a, again));
    let s = cache.stats().cpu;
    assert_eq!((s.entries, s.used, s.in_use), (1, 4 * 4 * 4, 0), "{s:?}");
}

#[test]
fn a_video_truncated_while_playing_ends_with_an_error_and_frees_its_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clip.y4m");
    // Frames larger than the reader's 64 KiB buffer, so that the cut is not read ahead.
    let (w, h, frames) = (320u32, 240u32, 30u64);
    texcache::testing::samples::write_y4m(&path, w, h, frames as u32).unwrap();
    let frame_len = (w * h + 2 * (w / 2) * (h / 2)) as u64 + 6;
    let header_len = std::fs::metadata(&path).unwrap().len() - frames * frame_len;
    for threaded in [true, false] {
        let mut cfg = texcache::Config::default();
        cfg.mediadir = tmp.path().into();
        cfg.video.threaded = threaded;
        cfg.video.queue_length = 2;
        let cache = Cache::new(cfg).unwrap();
        texcache::testing::samples::write_y4m(&path, w, h, frames as u32).unwrap();
        let mut node = cache.video("clip.y4m").unwrap();
        node.play().unwrap();
        node.wait_full();
        assert_eq!(node.next_frame().unwrap().unwrap().index(), 0);
        // The decoder has read at most queue_length + 1 frames; cut the file inside frame 5.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(header_len + 5 * frame_len + 100).unwrap();
        let mut shown = 1;
        let err = loop {
            match node.next_frame() {
                Ok(Some(_)) => shown += 1,
                Ok(None) => panic!("the stream ended without an error after {shown} frames"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err.kind(), ErrorKind::Video { .. }) && err.to_string().contains("clip.y4m"),
            "{err}"
        );
        assert_eq!(shown, 5, "frames 0-4 are whole");
        assert!(
            node.next_frame().unwrap().is_none(),
            "then the stream has ended"
        );
        node.stop();
        assert_eq!(cache.stats().video.cpu_bytes, 0);
        // The cache goes on: another node on a whole file plays.
        texcache::testing::samples::write_y4m(&tmp.path().join("ok.y4m"), w, h, 2).unwrap();
        let mut ok = cache.video("ok.y4m").unwrap();
        ok.play().unwrap();
        assert!(ok.next_frame().unwrap().is_some());
    }
}

#[test]
fn symlinks_swapped_in_after_caching_are_refused_under_confine() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    std::fs::create_dir_all(media.join("sub")).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    common::png(&media, "a.png", 2, 2);
    common::png(&media.join("sub"), "b.png", 2, 2);
    common::png(&outside, "a.png", 5, 5);
    common::png(&outside, "b.png", 5, 5);
    let mut cfg = texcache::Config::default();
    cfg.mediadir = media.clone();
    cfg.confine = true;
    let cache = Cache::new(cfg).unwrap();
    drop(cache.bitmap("a.png").unwrap());
    drop(cache.bitmap("sub/b.png").unwrap());

    // The keys are computed and cached; now the file and the directory become symlinks that
    // leave mediadir, and the entries are dropped so that the next acquire loads again.
    std::fs::remove_file(media.join("a.png")).unwrap();
    std::os::unix::fs::symlink(outside.join("a.png"), media.join("a.png")).unwrap();
    std::fs::remove_dir_all(media.join("sub")).unwrap();
    std::os::unix::fs::symlink(&outside, media.join("sub")).unwrap();
    assert!(cache.remove("a.png") && cache.remove("sub/b.png"));
    for href in ["a.png", "sub/b.png", "./sub/../a.png"] {
        match cache.bitmap(href) {
            Err(e) if matches!(e.kind(), ErrorKind::OutsideMediadir { .. }) => {
                assert!(e.to_string().starts_with(href), "{e}")
            }
            other => panic!("{href}: {:?}", other.map(|b| b.width())),
        }
    }
    let s = cache.stats().cpu;
    assert_eq!((s.entries, s.used, s.failures), (0, 0, 3), "{s:?}");
    // Swapped back inside: served again.
    std::fs::remove_file(media.join("a.png")).unwrap();
    common::png(&media, "a.png", 2, 2);
    assert_eq!(cache.bitmap("a.png").unwrap().width(), 2);
}

#[test]
fn a_video_replaced_by_another_frame_size_is_refused_and_huge_frames_from_the_header() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clip.y4m");
    for threaded in [true, false] {
        let mut cfg = texcache::Config::default();
        cfg.mediadir = tmp.path().into();
        cfg.video.threaded = threaded;
        let cache = Cache::new(cfg).unwrap();
        texcache::testing::samples::write_y4m(&path, 32, 16, 3).unwrap();
        let mut node = cache.video("clip.y4m").unwrap();
        node.play().unwrap();
        assert!(node.next_frame().unwrap().is_some());
        node.stop();
        // Replaced while stopped: playing again opens it again, and refuses the new size.
        texcache::testing::samples::write_y4m(&path, 64, 16, 3).unwrap();
        let err = match node.play() {
            Err(e) => e,
            Ok(()) => node.next_frame().unwrap_err(),
        };
        assert!(
            matches!(err.kind(), ErrorKind::Video { .. }) && err.to_string().contains("changed"),
            "{err}"
        );
        assert!(err.to_string().starts_with("clip.y4m"), "{err}");
        node.stop();
        assert_eq!(cache.stats().video.cpu_bytes, 0);

        // `loader.max_pixels` bounds video frames too, from the header.
        let toml = tmp.path().join("small.toml");
        std::fs::write(&toml, format!("[loader]\nmax_pixels = {}\n", 64 * 16 - 1)).unwrap();
        cache.reload_config(&toml).unwrap();
        match cache.video("clip.y4m") {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TooManyPixels {
                        width: 64,
                        height: 16,
                        ..
                    }
                ) =>
            {
                assert!(e.to_string().starts_with("clip.y4m"), "{e}")
            }
            other => panic!("{:?}", other.map(|n| n.info().width)),
        }
    }
}

//! Hostile files and a hostile machine (§9–§10): FIFOs and devices as hrefs, huge and
//! sparse files, control-socket files pulled away, confinement escapes through video nodes,
//! configs that ask for the impossible, a system that refuses threads, torn traces, broken
//! pipes. Nothing may hang, abort, panic or clobber a file. Every test that could hang runs
//! under [`within`], so a regression fails instead of blocking CI.

use crate::common;

use std::path::Path;
use std::process::Command;
use texcache::ErrorKind;
use texcache::{Cache, Config};

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn cache_with(dir: &Path, edit: impl FnOnce(&mut Config)) -> Cache {
    let mut cfg = Config::default();
    cfg.mediadir = dir.to_path_buf();
    cfg.stats.history_interval_ms = 0;
    edit(&mut cfg);
    Cache::new(cfg).unwrap()
}

/// This test binary again, to run only test `name` with `TEXCACHE_HOSTILE_CHILD` set: for
/// tests that change process-wide limits or measure the process's peak memory.
fn child(name: &str) -> Command {
    // The test's path in this binary: its module's, without the crate's name.
    let path = module_path!()
        .split_once("::")
        .map_or(name.to_string(), |(_, m)| format!("{m}::{name}"));
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([path.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env("TEXCACHE_HOSTILE_CHILD", "1");
    cmd
}

fn is_child() -> bool {
    std::env::var_os("TEXCACHE_HOSTILE_CHILD").is_some()
}

/// Runs `cmd` (from [`child`]) and checks that the test passed there.
fn assert_child_passes(mut cmd: Command) {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("CHILD OK"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The process's peak resident memory (VmHWM) in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

// 1. The control socket's file pulled away while served.

#[test]
fn dropping_a_cache_whose_socket_file_was_removed_renamed_or_replaced_returns() {
    for how in ["removed", "renamed", "replaced"] {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("app.sock");
        let cache = cache_with(tmp.path(), |c| c.stats.socket = sock.clone());
        assert!(texcache::observe::control::request(&sock, "stats").is_ok());
        match how {
            "removed" => std::fs::remove_file(&sock).unwrap(),
            "renamed" => std::fs::rename(&sock, tmp.path().join("moved.sock")).unwrap(),
            _ => {
                std::fs::remove_file(&sock).unwrap();
                std::fs::write(&sock, b"someone else's file").unwrap();
            }
        }
        common::within(
            10,
            &format!("dropping a cache whose socket was {how}"),
            move || drop(cache),
        );
        if how == "replaced" {
            assert_eq!(std::fs::read(&sock).unwrap(), b"someone else's file");
        }
    }
}

#[test]
fn a_predictable_private_socket_directory_name_cannot_block_the_socket() {
    // Another user of a shared folder pre-creates the directories a guessable name would use.
    let tmp = tempfile::tempdir().unwrap();
    for seq in 0..4 {
        std::fs::create_dir(
            tmp.path()
                .join(format!(".texcache-socket-{}-{seq}", std::process::id())),
        )
        .unwrap();
    }
    let sock = tmp.path().join("s.sock");
    let cache = cache_with(tmp.path(), |c| c.stats.socket = sock.clone());
    assert!(texcache::observe::control::request(&sock, "stats").is_ok());
    drop(cache);
}

// 2. FIFOs: as hrefs (directly, through a symlink, confined), video sources, configs, traces.

#[test]
fn a_fifo_is_not_a_file_never_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    mkfifo(&dir.join("pipe.png"));
    std::os::unix::fs::symlink(dir.join("pipe.png"), dir.join("link.png")).unwrap();
    common::png(&dir, "ok.png", 2, 2);
    for confine in [false, true] {
        let dir = dir.clone();
        common::within(10, "a FIFO as an href", move || {
            let cache = cache_with(&dir, |c| c.confine = confine);
            for href in ["pipe.png", "link.png"] {
                for _ in 0..2 {
                    match cache.bitmap(href) {
                        Err(e) if matches!(e.kind(), ErrorKind::NotAFile { .. }) => {
                            assert!(e.to_string().contains(href))
                        }
                        other => panic!("{href}: {other:?}"),
                    }
                }
                match cache.video(href) {
                    Err(e) if matches!(e.kind(), ErrorKind::NotAFile { .. }) => {}
                    other => panic!("video {href}: {:?}", other.map(|_| ())),
                }
            }
            assert_eq!(cache.stats().cpu.failures, 4);
            assert!(cache.bitmap("ok.png").is_ok(), "the cache goes on");
        });
    }
    let (config, trace, record) = (dir.join("c.toml"), dir.join("t.trace"), dir.join("r.trace"));
    for f in [&config, &trace, &record] {
        mkfifo(f);
    }
    common::within(10, "FIFOs as config, trace and recording", move || {
        let e = Config::load(&config).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = texcache::trace::Trace::load(&trace)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let cache = cache_with(&dir, |_| {});
        let e = cache.record_trace(&record).unwrap_err().to_string();
        assert!(e.contains("a FIFO that nobody reads"), "{e}");
        // The CLI too: --config, TEXCACHE_CONFIG and --trace.
        let bin = common::texcache_bin();
        let runs = [
            Command::new(&bin)
                .arg("check-config")
                .arg(&config)
                .output()
                .unwrap(),
            Command::new(&bin)
                .args(["replay", "--trace"])
                .arg(&trace)
                .output()
                .unwrap(),
            Command::new(&bin)
                .args(["stats", "--config"])
                .arg(&config)
                .output()
                .unwrap(),
            Command::new(&bin)
                .args(["stats"])
                .env("TEXCACHE_CONFIG", &config)
                .output()
                .unwrap(),
        ];
        for out in runs {
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not a regular file"), "{err}");
        }
    });
}

// 3. Huge, sparse and growing files.

#[test]
fn huge_sparse_files_are_refused_from_their_header_or_length() {
    let tmp = tempfile::tempdir().unwrap();
    // 64 GiB of nothing, and 64 GiB behind a PNG signature (both sparse: no disk used).
    let zeros = std::fs::File::create(tmp.path().join("zeros.png")).unwrap();
    zeros.set_len(64 << 30).unwrap();
    std::fs::write(tmp.path().join("big.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(tmp.path().join("big.png"))
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let dir = tmp.path().to_path_buf();
    common::within(20, "reading 64 GiB sparse files", move || {
        let cache = cache_with(&dir, |_| {});
        match cache.bitmap("zeros.png").map_err(|e| e.kind().clone()) {
            Err(ErrorKind::Unsupported { detail, .. }) => {
                assert!(detail.contains("not a recognised image format"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        match cache.bitmap("big.png").map_err(|e| e.kind().clone()) {
            Err(ErrorKind::Unsupported { detail, .. }) => {
                let bound = texcache::picture::max_file_bytes(Config::default().loader.max_pixels);
                assert!(detail.contains(&bound.to_string()), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn half_a_gigabyte_of_zeros_costs_no_memory() {
    if is_child() {
        let tmp = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(tmp.path().join("zeros.jpg")).unwrap();
        f.set_len(512 << 20).unwrap();
        let before = peak_rss();
        let cache = cache_with(tmp.path(), |_| {});
        assert!(matches!(
            cache.bitmap("zeros.jpg"),
            Err(e) if matches!(e.kind(), ErrorKind::Unsupported { .. })
        ));
        let grew = peak_rss().saturating_sub(before);
        assert!(
            grew < 16 << 20,
            "reading 512 MiB of zeros grew the peak RSS by {grew} bytes"
        );
        println!("CHILD OK");
        return;
    }
    assert_child_passes(child("half_a_gigabyte_of_zeros_costs_no_memory"));
}

#[test]
fn a_gif_claiming_a_huge_canvas_in_a_few_bytes_is_refused_before_its_canvas() {
    if is_child() {
        let tmp = tempfile::tempdir().unwrap();
        // 16000x16000 logical screen and frame, two-colour table, a few bytes of LZW data.
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&[0x80, 0x3E, 0x80, 0x3E, 0x80, 0, 0]); // screen, GCT of 2
        gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0x80, 0x3E, 0x80, 0x3E, 0]);
        gif.extend_from_slice(&[2, 2, 0x44, 0x01, 0, 0x3B]);
        std::fs::write(tmp.path().join("bomb.gif"), &gif).unwrap();
        let before = peak_rss();
        let cache = cache_with(tmp.path(), |_| {});
        for _ in 0..2 {
            match cache.bitmap("bomb.gif") {
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                    assert!(e.to_string().contains("16000x16000"), "{e}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(cache.video("bomb.gif").is_err());
        let grew = peak_rss().saturating_sub(before);
        assert!(
            grew < 16 << 20,
            "a {}-byte GIF grew the peak RSS by {grew} bytes",
            gif.len()
        );
        println!("CHILD OK");
        return;
    }
    assert_child_passes(child(
        "a_gif_claiming_a_huge_canvas_in_a_few_bytes_is_refused_before_its_canvas",
    ));
}

// 4. Confinement through a video node that reopens its file.

#[test]
fn a_video_node_checks_confinement_again_on_every_open() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(media.join("clips")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    texcache::testing::samples::write_y4m(&media.join("clips/a.y4m"), 16, 16, 3).unwrap();
    texcache::testing::samples::write_y4m(&outside.join("a.y4m"), 16, 16, 3).unwrap();
    let cache = cache_with(&media, |c| {
        c.confine = true;
        c.video.threaded = false;
    });
    let mut node = cache.video("clips/a.y4m").unwrap();
    node.play().unwrap();
    assert!(node.next_frame().unwrap().is_some());
    node.stop();
    // The folder is swapped for a symlink to outside mediadir after the node was opened.
    std::fs::rename(media.join("clips"), media.join("old")).unwrap();
    std::os::unix::fs::symlink(&outside, media.join("clips")).unwrap();
    let err = node
        .play()
        .and_then(|()| node.next_frame().map(drop))
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::OutsideMediadir { .. }),
        "{err:?}"
    );
    assert!(matches!(
        cache.video("clips/a.y4m").map(drop),
        Err(e) if matches!(e.kind(), ErrorKind::OutsideMediadir { .. })
    ));
}

// 5. Config counts that would panic or abort `Cache::new`.

#[test]
fn config_counts_are_bounded_with_the_bound_in_the_error() {
    for (text, key) in [
        (
            "[stats]\nhistory_length = 18446744073709551615\n",
            "stats.history_length",
        ),
        (
            "[stats]\nhistory_length = 1000000000000\n",
            "stats.history_length",
        ),
        (
            "[video]\nqueue_length = 1000000000000\n",
            "video.queue_length",
        ),
        ("[loader]\nthreads = 100000\n", "loader.threads"),
    ] {
        let err = Config::parse(text, "x.toml").unwrap_err().to_string();
        assert!(err.contains(key), "{text:?}: {err}");
        let out = Command::new(common::texcache_bin())
            .arg("check-config")
            .arg({
                let tmp = std::env::temp_dir().join(format!("texcache-bound-{}.toml", key));
                std::fs::write(&tmp, text).unwrap();
                tmp
            })
            .output()
            .unwrap();
        assert!(!out.status.success(), "check-config accepted {text:?}");
    }
    let err = Config::parse("[stats]\nhistory_length = 1000000000000\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&Config::MAX_HISTORY_LENGTH.to_string()),
        "{err}"
    );
    // A config built in code is checked by `Cache::new` as well.
    let mut cfg = Config::default();
    cfg.stats.history_length = usize::MAX;
    assert!(matches!(Cache::new(cfg), Err(e) if matches!(e.kind(), ErrorKind::Config { .. })));
}

#[test]
fn an_inline_table_typo_names_the_key_itself() {
    let err = Config::parse("cpu = { budget = 1, bogus = 2 }\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("x.toml:1: cpu.bogus"), "{err}");
}

// 6. A system that refuses threads.

#[test]
fn refused_prefetch_threads_are_a_typed_error_and_the_cache_goes_on() {
    if is_child() {
        let tmp = tempfile::tempdir().unwrap();
        common::png(tmp.path(), "a.png", 4, 4);
        let cache = cache_with(tmp.path(), |c| c.loader.threads = Config::MAX_THREADS);
        // The system lets this user have three more threads, not 1024.
        let limit = user_tasks() + 3;
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: a valid rlimit for the call.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &rl) }, 0);
        match cache.prefetch(["a.png"], None) {
            Err(e) if matches!(e.kind(), ErrorKind::Thread { .. }) => {
                assert!(e.to_string().contains("prefetch thread"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        cache.wait_prefetch();
        assert!(
            cache.bitmap_if_resident("a.png").is_some(),
            "prefetched by the threads it has"
        );
        cache.prefetch(["a.png"], None).unwrap();
        cache.wait_prefetch();
        println!("CHILD OK");
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut cmd = child("refused_prefetch_threads_are_a_typed_error_and_the_cache_goes_on");
    // RLIMIT_NPROC binds only users without CAP_SYS_RESOURCE: as root, the child runs as
    // `nobody`.
    // SAFETY: the closure runs in the forked child before exec and only makes system calls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::geteuid() == 0 && (libc::setgid(65534) != 0 || libc::setuid(65534) != 0) {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert_child_passes(cmd);
}

/// Threads (tasks) of every process of this process's real user: what RLIMIT_NPROC counts.
fn user_tasks() -> u64 {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() }.to_string();
    let mut n = 0;
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(p.path().join("status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1));
        if owner == Some(uid.as_str()) {
            n += std::fs::read_dir(p.path().join("task")).map_or(0, |t| t.count() as u64);
        }
    }
    n
}

// 7. Torn traces; 9. bad bytes and old line endings.

#[test]
fn a_torn_last_line_is_warned_about_and_ignored() {
    use texcache::trace::Trace;
    let recorded =
        "# texcache trace recorded by process 7 (§7)\nbitmap b1 a.png\nrelease b1\nbitmap b2 a.p";
    let t = Trace::parse(recorded, "r.trace").unwrap();
    assert_eq!(t.ops.len(), 2);
    assert_eq!(t.warnings.len(), 1);
    assert_eq!(t.warnings[0].0, 4);
    // A hand-written trace: an unterminated last line that parses is kept; one that does not
    // is warned about; a bad line anywhere else is still an error.
    assert_eq!(
        Trace::parse("bitmap a x.png\nrelease a", "t")
            .unwrap()
            .ops
            .len(),
        2
    );
    let t = Trace::parse("bitmap a x.png\nrelea", "t").unwrap();
    assert_eq!((t.ops.len(), t.warnings.len()), (1, 1));
    assert!(Trace::parse("relea\nbitmap a x.png\n", "t").is_err());

    // The CLI replays it, saying so on stderr.
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 2, 2);
    std::fs::write(tmp.path().join("r.trace"), recorded).unwrap();
    std::fs::write(tmp.path().join("c.toml"), "").unwrap();
    let out = Command::new(common::texcache_bin())
        .current_dir(tmp.path())
        .args([
            "replay", "--trace", "r.trace", "--config", "c.toml", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("r.trace:4") && err.contains("warning"),
        "{err}"
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["cpu"]["misses"], 1);
}

#[test]
fn a_bad_byte_names_its_line_and_lone_cr_ends_lines() {
    use texcache::trace::Trace;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.trace");
    std::fs::write(&path, b"bitmap a x.png\nrelease a\nbitmap b \xff.png\n").unwrap();
    match Trace::load(&path).map_err(|e| e.kind().clone()) {
        Err(ErrorKind::Trace { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
    let t = Trace::parse("bitmap a x.png\rrelease a\rremove x.png\r", "t").unwrap();
    assert_eq!(t.ops.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 2, 3]);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, b"[cpu]\nbudget = 1\n# caf\xe9\n").unwrap();
    match Config::load(&cfg).map_err(|e| e.kind().clone()) {
        Err(ErrorKind::Config { line, .. }) => assert_eq!(line, Some(3)),
        other => panic!("{other:?}"),
    }
}

// 8. Replay never records over its input.

#[test]
fn replay_never_records_over_the_trace_it_replays() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 2, 2);
    let trace = "bitmap a a.png\nrelease a\nbitmap b a.png\nrelease b\n";
    std::fs::write(tmp.path().join("app.trace"), trace).unwrap();
    // The application's config, which records to the very trace being replayed.
    std::fs::write(
        tmp.path().join("app.toml"),
        "[stats]\ntrace = \"app.trace\"\n",
    )
    .unwrap();
    let bin = common::texcache_bin();
    let replay = |extra: &[&str]| {
        Command::new(&bin)
            .current_dir(tmp.path())
            .args(["replay", "--trace", "app.trace", "--config", "app.toml"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = replay(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("app.trace")).unwrap(),
        trace
    );
    let out = replay(&["--record", "./app.trace"]);
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("app.trace")).unwrap(),
        trace
    );
    let out = replay(&["--record", "again.trace"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = std::fs::read_to_string(tmp.path().join("again.trace")).unwrap();
    assert!(
        again.contains("bitmap") && again.contains("release"),
        "{again}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("app.trace")).unwrap(),
        trace
    );
}

// 9. The command line under a closed pipe and absurd numbers.

#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("s.sock");
    let _cache = cache_with(tmp.path(), |c| c.stats.socket = sock.clone());
    let mut child = Command::new(common::texcache_bin())
        .args(["stats", "--json", "--watch", "0.1", "--socket"])
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"cpu\""), "{line}");
    // The reader is gone (like `| head -1`): the next write must end the process quietly.
    let out = common::within(20, "texcache stats into a closed pipe", move || {
        child.wait_with_output().unwrap()
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {err}",
        out.status
    );
}

#[test]
fn absurd_seconds_are_refused_or_taken_as_for_ever() {
    let bin = common::texcache_bin();
    for bad in ["inf", "-1", "NaN"] {
        let out = Command::new(&bin)
            .args(["replay", "--trace", "t", "--serve", "s", "--hold", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--hold {bad}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    // 1e20 s is for ever: replay keeps serving until killed, instead of panicking.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("t.trace"), "").unwrap();
    std::fs::write(tmp.path().join("c.toml"), "").unwrap();
    let mut cmd = Command::new(&bin);
    cmd.current_dir(tmp.path()).args([
        "replay", "--trace", "t.trace", "--config", "c.toml", "--json", "--serve", "s.sock",
        "--hold", "1e20",
    ]);
    let (mut child, line) = common::spawn_until_line(cmd);
    assert!(line.contains("\"cpu\""), "{line}");
    // Serving: the socket answers, so the process is alive past the point it panicked at.
    assert!(texcache::observe::control::request(&tmp.path().join("s.sock"), "stats").is_ok());
    assert!(
        child.try_wait().unwrap().is_none(),
        "replay --hold 1e20 exited"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

// 10. Entries removed while held are listed.

#[test]
fn entries_removed_while_held_are_listed_and_add_up() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 4, 4);
    common::png(tmp.path(), "b.png", 2, 2);
    let cache = cache_with(tmp.path(), |_| {});
    let a = cache.bitmap("a.png").unwrap();
    drop(cache.bitmap("b.png").unwrap());
    assert!(cache.remove("a.png"));
    let fresh = cache.bitmap("a.png").unwrap();
    let s = cache.stats_with_entries();
    // The JSON a client of `stats entries` reads.
    let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    let entries = json["entries"].as_array().unwrap();
    let cpu: Vec<&serde_json::Value> = entries.iter().filter(|e| e["tier"] == "cpu").collect();
    assert_eq!(cpu.len() as u64, s.cpu.entries, "{entries:?}");
    let listed: u64 = cpu.iter().map(|e| e["bytes"].as_u64().unwrap()).sum();
    assert_eq!(listed, s.cpu.used);
    let removed: Vec<_> = cpu.iter().filter(|e| e["removed"] == true).collect();
    assert_eq!(removed.len(), 1, "{entries:?}");
    assert_eq!(removed[0]["refs"], 1);
    let typed = s.entries.clone().unwrap();
    assert!(typed.iter().any(
        |e| matches!(e, texcache::observe::stats::Entry::Cached(c) if c.removed && c.refs == 1)
    ));
    assert!(s.to_string().contains("(removed"), "{s}");
    drop(a);
    let s = cache.stats_with_entries();
    let n = s
        .entries
        .unwrap()
        .iter()
        .filter(|e| e.tier() == "cpu")
        .count() as u64;
    assert_eq!((n, s.cpu.entries), (2, 2));
    drop(fresh);
}

// 11. Files whose headers make a decoder allocate (or copy) what the file does not hold.

#[cfg(feature = "ffmpeg")]
/// A box of an ISO base media file: size, type, body.
fn iso_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

#[cfg(feature = "ffmpeg")]
/// A full box: version, flags, body.
fn full_box(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    let mut b = vec![version, 0, 0, 0];
    b.extend_from_slice(body);
    iso_box(kind, &b)
}

#[cfg(feature = "ffmpeg")]
/// An AVIF container whose primary item (1) is located by `iloc`, with the AV1 configuration
/// `av1c` and a size (`ispe`) of `ispe`, padded with a `free` box to `len` bytes.
fn avif(iloc: &[u8], av1c: &[u8], ispe: (u32, u32), len: usize) -> Vec<u8> {
    let mut ftyp = b"avif".to_vec();
    ftyp.extend([0, 0, 0, 0]);
    ftyp.extend_from_slice(b"avifmif1");
    let mut ispe_body = ispe.0.to_be_bytes().to_vec();
    ispe_body.extend(ispe.1.to_be_bytes());
    let ipco = iso_box(
        b"ipco",
        &[iso_box(b"av1C", av1c), full_box(b"ispe", 0, &ispe_body)].concat(),
    );
    // Item 1: two properties, both essential.
    let ipma = full_box(b"ipma", 0, &[0, 0, 0, 1, 0, 1, 2, 0x81, 0x82]);
    let meta = full_box(
        b"meta",
        0,
        &[
            full_box(b"pitm", 0, &[0, 1]),
            iloc.to_vec(),
            iso_box(b"iprp", &[ipco, ipma].concat()),
        ]
        .concat(),
    );
    let mut file = [iso_box(b"ftyp", &ftyp), meta].concat();
    assert!(file.len() + 8 <= len, "{} bytes of boxes", file.len());
    file.extend(iso_box(b"free", &vec![0; len - file.len() - 8]));
    file
}

#[cfg(feature = "ffmpeg")]
/// `iloc` version 0 with offsets and lengths of 0 bytes (every extent "the whole file"): item 1
/// with `extents` extents.
fn iloc_whole_file_extents(extents: u16) -> Vec<u8> {
    let mut body = vec![0, 0]; // offset, length, base offset sizes: 0
    body.extend(1u16.to_be_bytes()); // one item
    body.extend(1u16.to_be_bytes()); // item 1
    body.extend(0u16.to_be_bytes()); // data reference
    body.extend(extents.to_be_bytes());
    full_box(b"iloc", 0, &body)
}

#[cfg(feature = "ffmpeg")]
/// The AV1 configuration of a still picture of `w`x`h` (a reduced sequence header OBU).
fn av1c_of(w: u32, h: u32) -> Vec<u8> {
    // seq_profile 0, still_picture 1, reduced_still_picture_header 1, seq_level_idx 31,
    // frame_width_bits_minus_1 15, frame_height_bits_minus_1 15, then the sizes minus 1.
    let mut bits: Vec<u8> = Vec::new();
    let mut put = |v: u32, n: u32| (0..n).rev().for_each(|i| bits.push((v >> i & 1) as u8));
    put(0, 3);
    put(1, 1);
    put(1, 1);
    put(31, 5);
    put(15, 4);
    put(15, 4);
    put(w - 1, 16);
    put(h - 1, 16);
    while !bits.len().is_multiple_of(8) {
        bits.push(0);
    }
    let payload: Vec<u8> = bits
        .chunks(8)
        .map(|c| c.iter().fold(0, |v, b| v << 1 | b))
        .collect();
    let mut obu = vec![0x0A, payload.len() as u8]; // sequence header, with a size
    obu.extend(payload);
    [vec![0x81, 0x1F, 0x0C, 0x00], obu].concat()
}

#[cfg(feature = "ffmpeg")]
#[test]
fn an_avif_whose_extents_add_up_past_its_length_is_corrupt_not_a_crash() {
    if is_child() {
        let tmp = tempfile::tempdir().unwrap();
        // 65,535 extents of the whole 65,538-byte file: 4.3 GB, past 2^32 (it once overflowed
        // a 64 KiB packet), and 65,535 of a 32 KiB file: just under 2^31 (once 2.1 GB).
        let cases = [("overflow.avif", 65_538), ("amplified.avif", 32 << 10)];
        for (name, len) in cases {
            let file = avif(
                &iloc_whole_file_extents(65_535),
                &av1c_of(16, 16),
                (16, 16),
                len,
            );
            std::fs::write(tmp.path().join(name), file).unwrap();
        }
        let before = peak_rss();
        let cache = cache_with(tmp.path(), |_| {});
        for (name, _) in cases {
            match cache.bitmap(name) {
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                    let m = e.to_string();
                    assert!(m.starts_with(name) && m.contains("add up"), "{m}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let grew = peak_rss().saturating_sub(before);
        assert!(
            grew < 16 << 20,
            "the AVIFs grew the peak RSS by {grew} bytes"
        );
        assert_eq!(cache.stats().cpu.used, 0);
        println!("CHILD OK");
        return;
    }
    assert_child_passes(child(
        "an_avif_whose_extents_add_up_past_its_length_is_corrupt_not_a_crash",
    ));
}

/// 200,000 items of 65,535 empty extents each in 2 MB: the parser steps over the items it does
/// not want (it once walked 13 billion extents and allocated for each item: 20 s).
#[cfg(feature = "ffmpeg")]
#[test]
fn an_avif_of_many_items_is_read_in_one_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let items = 200_000u32;
    let mut body = vec![0, 0]; // sizes: 0
    body.extend((items + 1).to_be_bytes());
    for id in 2..items + 2 {
        body.extend(id.to_be_bytes());
        body.extend([0, 0, 0, 0]); // construction method, data reference
        body.extend(65_535u16.to_be_bytes());
    }
    // The primary item last, with no extents (no data): the decoder refuses it.
    body.extend(1u32.to_be_bytes());
    body.extend([0, 0, 0, 0, 0, 0]);
    let iloc = full_box(b"iloc", 2, &body);
    let file = avif(&iloc, &av1c_of(16, 16), (16, 16), iloc.len() + 400);
    std::fs::write(tmp.path().join("items.avif"), file).unwrap();
    let dir = tmp.path().to_path_buf();
    let outcome = common::within(10, "200,000 AVIF items", move || {
        cache_with(&dir, |_| {}).bitmap("items.avif").map(drop)
    });
    match outcome {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Corrupt { .. } | ErrorKind::Unsupported { .. }
            ) =>
        {
            assert!(e.to_string().starts_with("items.avif"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// An AVIF whose `ispe` says 16x16 for a stream whose sequence header says 4096x4096 is
/// refused from the sequence header, before the decoder runs (it once passed
/// `loader.max_pixels` and was refused only after FFmpeg allocated the frame).
#[cfg(feature = "ffmpeg")]
#[test]
fn an_avif_that_understates_its_size_is_refused_before_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    let mut body = vec![0x44, 0x00]; // offset and length of 4 bytes, no base offset
    body.extend(1u16.to_be_bytes());
    body.extend(1u16.to_be_bytes());
    body.extend(0u16.to_be_bytes());
    body.extend(1u16.to_be_bytes());
    body.extend(0u32.to_be_bytes());
    body.extend(64u32.to_be_bytes());
    let iloc = full_box(b"iloc", 0, &body);
    let file = avif(&iloc, &av1c_of(4096, 4096), (16, 16), 1024);
    std::fs::write(tmp.path().join("liar.avif"), file).unwrap();
    let cache = cache_with(tmp.path(), |c| c.loader.max_pixels = 1 << 20);
    match cache
        .bitmap("liar.avif")
        .as_ref()
        .map_err(|e| (e.href(), e.kind()))
    {
        Err((href, ErrorKind::TooManyPixels { width, height, .. })) => {
            assert_eq!((href, *width, *height), (Some("liar.avif"), 4096, 4096))
        }
        other => panic!("{other:?}"),
    }
}

/// A 1,080-byte run-length coded BMP that claims 16384x16384 (it ends its picture with the
/// end-of-bitmap escape) is refused from its header, as GIF canvases are, with and without a
/// fit (it once decoded to a 1 GiB picture, 1.9 GB at peak).
#[test]
fn an_rle_bmp_claiming_a_huge_canvas_is_refused_before_its_canvas() {
    if is_child() {
        let tmp = tempfile::tempdir().unwrap();
        let (w, h) = (16_384i32, 16_384i32);
        let palette = 256 * 4;
        let data = [0u8, 1]; // end of bitmap
        let offset = 14 + 40 + palette;
        let mut bmp = b"BM".to_vec();
        bmp.extend(((offset + data.len()) as u32).to_le_bytes());
        bmp.extend([0, 0, 0, 0]);
        bmp.extend((offset as u32).to_le_bytes());
        bmp.extend(40u32.to_le_bytes());
        bmp.extend(w.to_le_bytes());
        bmp.extend(h.to_le_bytes());
        bmp.extend(1u16.to_le_bytes());
        bmp.extend(8u16.to_le_bytes());
        bmp.extend(1u32.to_le_bytes()); // BI_RLE8
        bmp.extend((data.len() as u32).to_le_bytes());
        bmp.extend([0; 8]);
        bmp.extend(256u32.to_le_bytes());
        bmp.extend(0u32.to_le_bytes());
        bmp.extend(vec![0x80; palette]);
        bmp.extend(data);
        assert_eq!(bmp.len(), 1_080);
        std::fs::write(tmp.path().join("bomb.bmp"), &bmp).unwrap();
        let before = peak_rss();
        let cache = cache_with(tmp.path(), |c| c.loader.max_pixels = 1 << 30);
        for fit in [None, Some((64, 64))] {
            let got = match fit {
                None => cache.bitmap("bomb.bmp"),
                Some((w, h)) => cache.bitmap_fit("bomb.bmp", w, h),
            };
            match got {
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                    assert!(e.to_string().contains("16384x16384"), "{e}")
                }
                other => panic!("{fit:?}: {other:?}"),
            }
        }
        let grew = peak_rss().saturating_sub(before);
        assert!(
            grew < 16 << 20,
            "a 1,080-byte BMP grew the peak RSS by {grew} bytes"
        );
        println!("CHILD OK");
        return;
    }
    assert_child_passes(child(
        "an_rle_bmp_claiming_a_huge_canvas_is_refused_before_its_canvas",
    ));
}

// 12. fork() while threads and loads are live (a data loader's workers).

/// Runs `child` in a forked child process and returns its exit status (0: it returned; 1: it
/// panicked), waiting at most 60 s. The child runs only `child` and leaves with `_exit`, so
/// nothing of the test harness runs there.
fn in_forked_child(child: impl FnOnce()) -> i32 {
    // SAFETY: the child runs `child` (texcache's code and the allocator, whose locks glibc
    // resets at fork) and leaves with `_exit`, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).is_ok();
        // SAFETY: ends the child at once, without running the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    common::within(60, "the forked child", move || {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a live local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status),
            "the child was killed: status {status}"
        );
        libc::WEXITSTATUS(status)
    })
}

/// A cache forked while its prefetch threads, history sampler and control socket run, a load
/// is in flight and a request pending, works in the child as a fresh cache of the child's own:
/// the picture being loaded in the parent loads there, prefetch runs, the parent's handles
/// still read and drop, the pending request answers instead of waiting for ever, and dropping
/// the cache neither panics nor touches the parent's socket file or trace. The parent goes on
/// as if nothing happened.
#[test]
fn a_forked_child_gets_a_fresh_cache_and_leaves_the_parents_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    common::png(&dir, "small.png", 16, 16);
    common::png(&dir, "other.png", 8, 8);
    common::png(&dir, "big.png", 3000, 3000);
    let sock = dir.join("app.sock");
    let trace = dir.join("app.trace");
    let cache = cache_with(&dir, |c| {
        c.stats.socket = sock.clone();
        c.stats.trace = trace.clone();
        c.stats.history_interval_ms = 5;
        c.loader.threads = 2;
    });
    // The prefetch threads run; one handle is held; a load is in flight for a request.
    cache.prefetch(["other.png"], None).unwrap();
    cache.wait_prefetch();
    let held = cache.bitmap("small.png").unwrap();
    let pixels = held.pixels().to_vec();
    let mut request = cache.request_bitmap("big.png", None);
    while cache.stats().cpu.misses < 3 {
        std::thread::yield_now(); // until the loader thread has started on big.png
    }
    let app = cache.clone();
    let mut cache = Some(cache);
    let status = in_forked_child(|| {
        let cache = cache.take().unwrap();
        // The parent's handle reads, clones and drops.
        assert_eq!(held.pixels(), &pixels[..]);
        drop(held.clone());
        drop(held);
        // The parent's pending request answers (its loader thread is not here).
        match request.try_get() {
            Some(Ok(b)) => assert_eq!(b.width(), 3000),
            Some(Err(e)) if matches!(e.kind(), ErrorKind::Cancelled) => {
                assert_eq!(e.href(), Some("big.png"))
            }
            other => panic!("{other:?}"),
        }
        // A fresh cache: the same config, none of the parent's entries or counts.
        let s = app.stats();
        assert_eq!(
            (s.cpu.entries, s.cpu.misses, s.cpu.hits),
            (0, 0, 0),
            "{s:?}"
        );
        assert_eq!(s.cpu.budget, cache.config().cpu.budget.0);
        // The picture in flight in the parent loads here; prefetch runs here.
        assert_eq!(app.bitmap("big.png").unwrap().width(), 3000);
        app.prefetch(["other.png"], None).unwrap();
        app.wait_prefetch();
        assert!(app.bitmap_if_resident("other.png").is_some());
        assert_eq!(app.stats().cpu.misses, 2);
        // No socket or trace of the child's own.
        assert!(app.config().stats.socket.as_os_str().is_empty());
        drop(app);
        drop(cache);
    });
    assert_eq!(status, 0, "the child failed (its stderr says why)");
    let cache = cache.unwrap();
    // The parent's request, socket and trace are as they were.
    let b = request.wait().unwrap();
    assert_eq!((b.width(), b.height()), (3000, 3000));
    assert!(
        std::fs::symlink_metadata(&sock).is_ok(),
        "the socket file was removed"
    );
    let out = common::stats_over(&sock, &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cache_stats = cache.stats();
    assert_eq!(cache_stats.cpu.misses, 3, "{cache_stats:?}");
    drop(b);
    drop(cache);
    assert!(
        !sock.exists(),
        "the parent removes its socket when it drops its cache"
    );
    let written = std::fs::read_to_string(&trace).unwrap();
    assert!(
        written.contains("small.png") && written.contains("big.png"),
        "{written}"
    );
}

/// A video node opened before a fork answers in the child with an error instead of waiting
/// for the parent's decoder thread, and dropping it there joins nothing.
#[test]
fn a_video_node_from_before_a_fork_says_so_in_the_child() {
    let dir = common::corpus().join("video");
    let cache = cache_with(&dir, |_| {});
    let mut node = cache.video("testsrc2_320x240_60f.y4m").unwrap();
    node.play().unwrap();
    let first = node.next_frame().unwrap().expect("a frame");
    let status = in_forked_child(|| {
        assert_eq!(first.index(), 0);
        drop(first);
        match node.next_frame() {
            Err(e) if matches!(e.kind(), ErrorKind::Video { .. }) => {
                assert!(e.to_string().contains("forked"), "{e}")
            }
            other => panic!("{:?}", other.map(|f| f.map(|f| f.index()))),
        }
        assert!(node.play().is_err());
        drop(node);
        // The child's own cache plays it.
        let mut mine = cache.video("testsrc2_320x240_60f.y4m").unwrap();
        mine.play().unwrap();
        assert_eq!(mine.next_frame().unwrap().unwrap().index(), 0);
    });
    assert_eq!(status, 0, "the child failed (its stderr says why)");
}

/// A 20 KB WebP whose chunk claims 4 GB (the `formats` fuzzer's find): `image-webp` allocated
/// the claimed size before reading, which fails outright where address space is limited (here
/// to 1 GiB more than the process has: it aborted). Refused from the chunk headers, as a
/// picture and as a video source.
#[test]
fn a_webp_chunk_claiming_more_than_the_file_is_refused_before_it_is_allocated() {
    if is_child() {
        let tmp = tempfile::tempdir().unwrap();
        let found = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz/formats/webp-chunk-claiming-4-gb-allocated-it");
        let bytes = std::fs::read(found).unwrap();
        std::fs::write(tmp.path().join("claim.webp"), &bytes[1..]).unwrap(); // less the pick byte
        let cache = cache_with(tmp.path(), |_| {});
        let vm = common::status("VmSize:");
        let limit = libc::rlimit {
            rlim_cur: vm + (1 << 30),
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: a valid resource and a live struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
        match cache.bitmap("claim.webp") {
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                assert!(e.to_string().contains("past the end"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        match cache.video("claim.webp") {
            Err(e) => assert!(e.to_string().starts_with("claim.webp"), "{e}"),
            Ok(_) => panic!("a video node"),
        }
        println!("CHILD OK");
        return;
    }
    assert_child_passes(child(
        "a_webp_chunk_claiming_more_than_the_file_is_refused_before_it_is_allocated",
    ));
}

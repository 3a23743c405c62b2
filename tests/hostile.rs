//! Hostile files and a hostile machine (§9–§10): FIFOs and devices as hrefs, huge and
//! sparse files, control-socket files pulled away, confinement escapes through video nodes,
//! configs that ask for the impossible, a system that refuses threads, torn traces, broken
//! pipes. Nothing may hang, abort, panic or clobber a file. Every test that could hang runs
//! under [`within`], so a regression fails instead of blocking CI.

mod common;

use std::path::Path;
use std::process::Command;
use texcache::{Cache, Config, Error};

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
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
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
        assert!(texcache::control::request(&sock, "stats").is_ok());
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
    assert!(texcache::control::request(&sock, "stats").is_ok());
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
                        Err(e @ Error::NotAFile { .. }) => assert!(e.to_string().contains(href)),
                        other => panic!("{href}: {other:?}"),
                    }
                }
                match cache.video(href) {
                    Err(Error::NotAFile { .. }) => {}
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
        match cache.bitmap("zeros.png") {
            Err(Error::Unsupported { detail, .. }) => {
                assert!(detail.contains("not a recognised image format"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        match cache.bitmap("big.png") {
            Err(Error::Unsupported { detail, .. }) => {
                let bound = texcache::bitmap::max_file_bytes(Config::default().loader.max_pixels);
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
            Err(Error::Unsupported { .. })
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
                Err(e @ Error::Corrupt { .. }) => {
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
    texcache::samples::write_y4m(&media.join("clips/a.y4m"), 16, 16, 3).unwrap();
    texcache::samples::write_y4m(&outside.join("a.y4m"), 16, 16, 3).unwrap();
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
    assert!(matches!(err, Error::OutsideMediadir { .. }), "{err:?}");
    assert!(matches!(
        cache.video("clips/a.y4m").map(drop),
        Err(Error::OutsideMediadir { .. })
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
    assert!(matches!(Cache::new(cfg), Err(Error::Config { .. })));
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
        match cache.prefetch(["a.png"]) {
            Err(e @ Error::Thread { .. }) => {
                assert!(e.to_string().contains("prefetch thread"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        cache.wait_prefetch();
        assert!(
            cache.bitmap_if_resident("a.png").is_some(),
            "prefetched by the threads it has"
        );
        cache.prefetch(["a.png"]).unwrap();
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
    match Trace::load(&path) {
        Err(Error::Trace { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
    let t = Trace::parse("bitmap a x.png\rrelease a\rremove x.png\r", "t").unwrap();
    assert_eq!(t.ops.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 2, 3]);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, b"[cpu]\nbudget = 1\n# caf\xe9\n").unwrap();
    match Config::load(&cfg) {
        Err(Error::Config { line, .. }) => assert_eq!(line, Some(3)),
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
    assert!(texcache::control::request(&tmp.path().join("s.sock"), "stats").is_ok());
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
    assert!(typed
        .iter()
        .any(|e| matches!(e, texcache::stats::Entry::Cached(c) if c.removed && c.refs == 1)));
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

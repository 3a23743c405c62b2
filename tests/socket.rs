//! The control socket (§9) and `texcache stats` against a running process.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use texcache::observe::control::request;
use texcache::{Cache, ErrorKind};

fn serving(dir: &Path, socket: &Path) -> Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.to_path_buf();
    cfg.stats.socket = socket.to_path_buf();
    Cache::new(cfg).unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The stats without the process section (RSS moves between two snapshots).
fn without_rss(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("process");
    v
}

#[test]
fn answers_stats_entries_trim_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 10, 10);
    let sock = tmp.path().join("ctl.sock");
    let cache = serving(tmp.path(), &sock);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner only");
    let held = cache.bitmap("a.png").unwrap();
    assert_eq!(
        without_rss(json(&request(&sock, "stats").unwrap())),
        without_rss(json(&cache.stats().to_json()))
    );
    let with = json(&request(&sock, "stats entries").unwrap());
    assert_eq!(with["entries"][0]["bytes"], 400);
    assert_eq!(with["entries"][0]["refs"], 1);
    drop(held);
    let trimmed = json(&request(&sock, "trim cpu 0").unwrap());
    assert_eq!(
        (&trimmed["used"], &trimmed["evictions"]),
        (&0.into(), &1.into())
    );
    for bad in [
        "",
        "hello",
        "trim disk 0",
        "trim cpu lots",
        "stats everything",
    ] {
        let a = json(&request(&sock, bad).unwrap());
        assert!(a["error"].is_string(), "{bad:?}: {a}");
    }
    drop(cache);
    assert!(!sock.exists(), "the socket is removed with the cache");
}

#[test]
fn hostile_clients_cannot_block_it() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 10, 10);
    let sock = tmp.path().join("ctl.sock");
    let cache = serving(tmp.path(), &sock);
    let rss_before = texcache::observe::stats::process_rss();

    // A client that connects and never writes, held open throughout.
    let silent = UnixStream::connect(&sock).unwrap();
    // A 1 MiB line: answered with an error (or cut off), never buffered whole.
    {
        let mut c = UnixStream::connect(&sock).unwrap();
        let writer = {
            let mut c = c.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = c.write_all(&vec![b'x'; 1 << 20]);
            })
        };
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        writer.join().unwrap();
        assert!(
            answer.is_empty() || json(answer.trim())["error"].is_string(),
            "{answer}"
        );
    }
    // Garbage bytes.
    let a = request(&sock, "\u{1}\u{2}\u{3}garbage").unwrap();
    assert!(json(&a)["error"].is_string());
    // The application is unaffected meanwhile.
    assert_eq!(cache.bitmap("a.png").unwrap().bytes(), 400);

    // 100 clients at once: each is answered or dropped, none hangs.
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || request(&sock, "stats").map(|a| json(&a)))
        })
        .collect();
    let mut answered = 0;
    for c in clients {
        match c.join().unwrap() {
            Ok(v) => {
                assert_eq!(v["cpu"]["entries"], 1);
                answered += 1;
            }
            Err(e) if matches!(e.kind(), ErrorKind::Socket { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(answered > 0);
    drop(silent);
    assert!(request(&sock, "stats").is_ok(), "still serving");
    let grown = texcache::observe::stats::process_rss().saturating_sub(rss_before);
    assert!(grown < 16 << 20, "RSS grew {grown} bytes");
}

#[test]
fn existing_files_at_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ctl.sock");
    // A regular file is left untouched and reported.
    std::fs::write(&path, "precious").unwrap();
    let mut cfg = texcache::Config::default();
    cfg.stats.socket = path.clone();
    match Cache::new(cfg.clone()) {
        Err(e) if matches!(e.kind(), ErrorKind::Socket { .. }) => {
            assert!(e.to_string().contains("ctl.sock"), "{e}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();

    // A stale socket (nobody accepting) is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let cache = Cache::new(cfg.clone()).unwrap();
    assert!(request(&path, "stats").is_ok());
    // A live one is not taken over.
    assert!(matches!(Cache::new(cfg), Err(e) if matches!(e.kind(), ErrorKind::Socket { .. })));
    assert!(
        request(&path, "stats").is_ok(),
        "the first server still serves"
    );
    drop(cache);
    assert!(!path.exists());
}

#[test]
fn texcache_stats_against_replay_serve_matches_the_replay() {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["a", "b", "c"] {
        common::png(tmp.path(), &format!("{n}.png"), 10, 10);
    }
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(&cfg, "mediadir = \".\"\n[cpu]\nbudget = 850\n").unwrap();
    let trace = tmp.path().join("t.trace");
    std::fs::write(
        &trace,
        "bitmap 1 a.png\nbitmap 2 b.png\nrelease 1\nbitmap 3 c.png\nbitmap 4 missing.png\n",
    )
    .unwrap();
    let sock = tmp.path().join("replay.sock");
    let exe = common::texcache_bin();
    let mut cmd = Command::new(&exe);
    cmd.args(["replay", "--json", "--hold", "60", "--trace"])
        .arg(&trace)
        .arg("--config")
        .arg(&cfg)
        .arg("--serve")
        .arg(&sock)
        .env_remove("TEXCACHE_CONFIG");
    // The replay binds the socket before it prints its final JSON.
    let (mut child, line) = common::spawn_until_line(cmd);
    let replayed = json(line.trim());
    let out = common::stats_over(&sock, &["--json"]);
    let table = common::stats_over(&sock, &[]);
    let svg = tmp.path().join("memory.svg");
    let plotted = common::stats_over(&sock, &["--plot", svg.to_str().unwrap()]);
    let history = texcache::observe::control::request(&sock, "stats history").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped = json(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(without_rss(dumped), without_rss(replayed.clone()));
    assert_eq!(replayed["cpu"]["failures"], 1);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("cpu") && table.contains("video"), "{table}");
    // The replay's memory history: a sample when its cache opened, one after the replay.
    assert!(
        plotted.status.success(),
        "{}",
        String::from_utf8_lossy(&plotted.stderr)
    );
    common::assert_svg(&svg, &common::MEMORY_SERIES);
    let history = json(&history)["history"].as_array().unwrap().clone();
    assert!(history.len() >= 2, "{history:?}");
    let last = history.last().unwrap();
    assert_eq!(last["cpu_used"], replayed["cpu"]["used"]);
    assert_eq!(last["cpu_budget"], 850);

    let none = Command::new(exe)
        .args(["stats", "--socket"])
        .arg(tmp.path().join("nobody.sock"))
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("nobody.sock"));
}

//! The CPU tier shared between processes (§12): an owner and client processes (this test
//! binary run again, with `TEXCACHE_SHARED_CHILD` naming what to do), one decode for all, the
//! same pixels everywhere, holds that end with their process, an owner that dies under its
//! clients, clients that misbehave, and pixels no client can write.

use crate::common;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use texcache::testing::samples;
use texcache::{Cache, Config, ErrorKind};

const PICTURES: u32 = 12;

/// This test binary again, running only test `name` as a child with `what` to do.
fn child(name: &str, what: &str, socket: &Path, media: &Path) -> Command {
    let path = module_path!()
        .split_once("::")
        .map_or(name.to_string(), |(_, m)| format!("{m}::{name}"));
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([path.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env("TEXCACHE_SHARED_CHILD", what)
        .env("TEXCACHE_SHARED_SOCKET", socket)
        .env("TEXCACHE_SHARED_MEDIA", media)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// What this process was started to do, as a child of one of these tests.
fn role() -> Option<(String, PathBuf, PathBuf)> {
    let what = std::env::var("TEXCACHE_SHARED_CHILD").ok()?;
    let socket = std::env::var_os("TEXCACHE_SHARED_SOCKET")?.into();
    let media = std::env::var_os("TEXCACHE_SHARED_MEDIA")?.into();
    Some((what, socket, media))
}

/// Reads the child's stdout up to a line starting with `mark`; its rest.
fn read_until(out: &mut impl BufRead, mark: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended before {mark:?}"
        );
        // The test harness may have begun the line ("test NAME ... ").
        if let Some((_, rest)) = line.split_once(mark) {
            return rest.trim().to_string();
        }
    }
}

/// A checksum of pixels (FNV-1a).
fn checksum(pixels: &[u8]) -> u64 {
    pixels.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn pictures(dir: &Path) -> Vec<String> {
    samples::write_pictures(dir, PICTURES, 96, 64, true).unwrap()
}

/// A config over `media` (with no sampler thread), sharing at `socket` unless it is empty.
fn config(media: &Path, socket: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.mediadir = media.into();
    cfg.stats.history_interval_ms = 0;
    cfg.shared.socket = socket.into();
    cfg
}

fn owner(media: &Path, socket: &Path) -> Cache {
    Cache::new(config(media, socket)).unwrap()
}

/// An owner over generated pictures (in a temporary folder, kept while the first value lives)
/// and a client of it, in this process.
fn owner_and_client() -> (
    tempfile::TempDir,
    Vec<String>,
    Cache,
    texcache::shared::Client,
) {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    let socket = tmp.path().join("shared.sock");
    let cache = owner(&media, &socket);
    let client = texcache::shared::connect(&socket).unwrap();
    (tmp, names, cache, client)
}

/// Polls `f` until it holds, for at most `secs` seconds.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::yield_now();
    }
}

/// The children's part: connect, then do `what`.
fn run_child(what: &str, socket: &Path, media: &Path) {
    let names = pictures_in(media);
    match what {
        // Views every picture and prints its checksum.
        "view" => {
            let client = texcache::shared::connect(socket).unwrap();
            for n in &names {
                let b = client.bitmap(n).unwrap();
                println!("SUM {n} {}", checksum(b.pixels()));
            }
            // Once the client is gone, nothing of the owner's stays mapped here.
            drop(client);
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let left = maps
                .lines()
                .filter(|l| l.contains("/memfd:texcache"))
                .count();
            println!("MAPPED AFTER {left}");
            println!("DONE");
        }
        // Holds every picture, says so, and waits to be killed.
        "hold" => {
            let client = texcache::shared::connect(socket).unwrap();
            let held: Vec<_> = names.iter().map(|n| client.bitmap(n).unwrap()).collect();
            println!("HELD {}", held.len());
            std::io::stdout().flush().unwrap();
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            drop(held);
        }
        // Random traffic: holds, releases, fitted requests, prefetches. (Removals, whose
        // order against a load in flight a trace does not keep, are in the other tests.)
        "random" => {
            let client = texcache::shared::connect(socket).unwrap();
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ std::process::id() as u64;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut held = Vec::new();
            let mut acquires = 0u64;
            for _ in 0..300 {
                let n = &names[next() as usize % names.len()];
                match next() % 10 {
                    0..=4 => {
                        held.push(client.bitmap(n).unwrap());
                        acquires += 1;
                    }
                    5 => {
                        held.push(client.bitmap_fit(n, 24, 24).unwrap());
                        acquires += 1;
                    }
                    6..=8 if !held.is_empty() => {
                        held.swap_remove(next() as usize % held.len());
                    }
                    _ => client.prefetch([n.as_str()], None).unwrap(),
                }
            }
            drop(held);
            println!("ACQUIRES {acquires}");
        }
        // Decodes each big picture into a cache of its own and into a sharing cache, and
        // prints how far each decode raised this process's peak of resident memory.
        "peak" => peaks(media, socket),
        // Owns a shared cache and waits to be killed.
        "own" => {
            let cache = owner(media, socket);
            println!("READY");
            std::io::stdout().flush().unwrap();
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            drop(cache);
        }
        other => panic!("unknown child role {other}"),
    }
}

/// A line of `/proc/self/status` (`VmHWM`, `RssShmem`), in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line.trim().trim_end_matches(" kB").parse::<u64>().unwrap() * 1024
}

/// The child's part of the peak test: `PEAK KIND NAME PIXEL_BYTES PEAK_GROWTH SHMEM_GROWTH`
/// for each decode, plain and fitted, into the heap and into shared memory.
fn peaks(media: &Path, socket: &Path) {
    // glibc: every allocation of 64 KiB or more gets a mapping of its own, unmapped when it is
    // freed, so that the peak of resident memory is the peak of the bytes alive.
    // SAFETY: plain calls setting two of glibc's allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 10);
    }
    let heap = Cache::new(config(media, Path::new(""))).unwrap();
    let shared = owner(media, socket);
    for name in pictures_in(media) {
        for fit in [None, Some((1000, 1000))] {
            for (kind, cache) in [("heap", &heap), ("shared", &shared)] {
                // "5": the peak of resident memory starts again from what is resident now.
                std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
                let (hwm, shmem) = (status_bytes("VmHWM"), status_bytes("RssShmem"));
                let b = match fit {
                    None => cache.bitmap(&name).unwrap(),
                    Some((w, h)) => cache.bitmap_fit(&name, w, h).unwrap(),
                };
                let bytes = b.pixels().len();
                let how = fit.map_or("full".to_string(), |(w, h)| format!("fit{w}x{h}"));
                println!(
                    "PEAK {kind} {name}/{how} {bytes} {} {}",
                    status_bytes("VmHWM") - hwm,
                    status_bytes("RssShmem").saturating_sub(shmem)
                );
                drop(b);
                cache.remove(&name);
            }
        }
    }
    println!("DONE");
}

fn pictures_in(media: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(media)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn four_client_processes_share_one_decode_of_each_picture() {
    if let Some((what, socket, media)) = role() {
        return run_child(&what, &socket, &media);
    }
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    let socket = tmp.path().join("shared.sock");
    let cache = owner(&media, &socket);
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let kids: Vec<Child> = (0..4)
        .map(|_| {
            child(
                "four_client_processes_share_one_decode_of_each_picture",
                "view",
                &socket,
                &media,
            )
            .spawn()
            .unwrap()
        })
        .collect();
    let sums: Vec<Vec<String>> = kids
        .into_iter()
        .map(|k| {
            let out = k.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success() && text.contains("DONE"), "{text}");
            assert!(text.contains("MAPPED AFTER 0"), "{text}");
            text.lines()
                .filter_map(|l| l.split_once("SUM ").map(|(_, s)| s.to_string()))
                .collect()
        })
        .collect();
    let s = cache.stats();
    // One decode per picture for the four processes; the other acquires were hits or waited
    // for that decode.
    assert_eq!(s.cpu.misses, PICTURES as u64, "{s:?}");
    assert_eq!(s.cpu.hits + s.cpu.coalesced, 3 * PICTURES as u64, "{s:?}");
    assert_eq!(s.cpu.failures, 0);
    // Every client saw the owner's pixels.
    let own: Vec<String> = names
        .iter()
        .map(|n| format!("{n} {}", checksum(cache.bitmap(n).unwrap().pixels())))
        .collect();
    for client in &sums {
        assert_eq!(client, &own);
    }
    // The clients are gone, and so are their holds.
    eventually(1, "clients' holds released", || {
        let s = cache.stats();
        s.shared.as_ref().unwrap().clients.is_empty() && s.cpu.in_use_entries == 0
    });
    let shared = cache.stats().shared.unwrap();
    assert_eq!(shared.socket, socket.display().to_string());
    // The process's shared mappings: this cache's pictures (other tests of this binary may map
    // theirs meanwhile).
    assert!(shared.mapped_bytes >= cache.stats().cpu.used, "{shared:?}");
    // Nothing under /dev/shm is ours: the pixels are in memfds.
    let ours = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("texcache")
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(ours, 0);
}

#[test]
fn a_client_killed_while_holding_pictures_releases_them_within_a_second() {
    if let Some((what, socket, media)) = role() {
        return run_child(&what, &socket, &media);
    }
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    pictures(&media);
    let socket = tmp.path().join("shared.sock");
    let cache = owner(&media, &socket);
    let mut kid = child(
        "a_client_killed_while_holding_pictures_releases_them_within_a_second",
        "hold",
        &socket,
        &media,
    )
    .spawn()
    .unwrap();
    let mut out = BufReader::new(kid.stdout.take().unwrap());
    assert_eq!(read_until(&mut out, "HELD "), PICTURES.to_string());
    let s = cache.stats();
    assert_eq!(s.cpu.in_use_entries, PICTURES as u64);
    let clients = s.shared.unwrap().clients;
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].pid, kid.id());
    assert_eq!(clients[0].held_entries, PICTURES as u64);
    assert_eq!(clients[0].held_bytes, s.cpu.in_use);
    // `texcache stats` on the owner's control socket shows its clients.
    let control = tmp.path().join("control.sock");
    cache.serve(&control).unwrap();
    let out = common::stats_over(&control, &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.contains("1 client(s)"), "{table}");
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&kid.id().to_string()));
    let row: Vec<&str> = row
        .expect("a row for the client")
        .split_whitespace()
        .collect();
    assert_eq!(row[1], PICTURES.to_string(), "{table}");
    // A held picture is in use in the owner's tier: trimming cannot evict it.
    assert_eq!(cache.trim(texcache::TierKind::Cpu, 0).used, s.cpu.used);
    kid.kill().unwrap();
    kid.wait().unwrap();
    let killed = Instant::now();
    eventually(1, "a killed client's holds released", || {
        let s = cache.stats();
        s.cpu.in_use_entries == 0 && s.shared.unwrap().clients.is_empty()
    });
    assert!(killed.elapsed() < Duration::from_secs(1));
    // Unused now, so evictable as any other.
    assert_eq!(cache.trim(texcache::TierKind::Cpu, 0).used, 0);
}

#[test]
fn when_the_owner_dies_views_stay_readable_and_calls_fail_with_owner_gone() {
    if let Some((what, socket, media)) = role() {
        return run_child(&what, &socket, &media);
    }
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    let socket = tmp.path().join("shared.sock");
    let mut own = child(
        "when_the_owner_dies_views_stay_readable_and_calls_fail_with_owner_gone",
        "own",
        &socket,
        &media,
    )
    .spawn()
    .unwrap();
    let mut out = BufReader::new(own.stdout.take().unwrap());
    read_until(&mut out, "READY");
    let client = texcache::shared::connect(&socket).unwrap();
    let view = client.bitmap(&names[0]).unwrap();
    let sum = checksum(view.pixels());
    let expected = texcache::picture::load_file(
        &names[0],
        &media.join(&names[0]),
        None,
        &texcache::picture::DecodeOptions::new(1 << 28),
    )
    .unwrap();
    assert_eq!(sum, checksum(expected.pixels()));
    own.kill().unwrap();
    own.wait().unwrap();
    assert_eq!(checksum(view.pixels()), sum, "a view outlives its owner");
    let t = Instant::now();
    let e = client.bitmap(&names[1]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::OwnerGone { .. }), "{e}");
    assert!(e.to_string().contains("shared.sock"), "{e}");
    let e = client.stats().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::OwnerGone { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(1));
    drop(view);
}

#[test]
fn clients_that_misbehave_are_dropped_and_the_others_served() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    let socket = tmp.path().join("shared.sock");
    let cache = owner(&media, &socket);
    let raw = || {
        // SAFETY: a plain socket call; the result is checked and owned at once.
        let fd =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: a new descriptor nothing else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_un is valid; the path fits (a short temporary path).
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in addr
            .sun_path
            .iter_mut()
            .zip(socket.as_os_str().as_encoded_bytes())
        {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: a valid address for the call.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                len,
            )
        };
        assert_eq!(r, 0);
        fd
    };
    let send = |fd: &std::os::fd::OwnedFd, bytes: &[u8]| {
        // SAFETY: a live buffer of `len` bytes.
        unsafe {
            libc::send(
                fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        }
    };
    let closed_by_owner = |fd: &std::os::fd::OwnedFd| {
        let mut b = [0u8; 64];
        // (The owner's first message, the client's hold table, may come before the end.)
        loop {
            // SAFETY: a live buffer of 64 bytes.
            let n = unsafe { libc::recv(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len(), 0) };
            if n <= 0 {
                return n == 0;
            }
        }
    };
    // Garbage, and half a request (an acquire cut short in its fit), are dropped.
    let garbage = raw();
    send(&garbage, b"\x63hello");
    assert!(closed_by_owner(&garbage));
    let half = raw();
    send(&half, b"\x01\x10\x00");
    assert!(closed_by_owner(&half));
    // A client that floods requests and never reads its replies: dropped once a reply has
    // waited two seconds, while another client is served all along.
    let flood = raw();
    let flooding = std::thread::spawn(move || {
        let mut sent = 0u64;
        while send(&flood, b"\x05") > 0 {
            sent += 1;
        }
        sent
    });
    let good = texcache::shared::connect(&socket).unwrap();
    for n in &names {
        assert_eq!(
            good.bitmap(n).unwrap().pixels(),
            cache.bitmap(n).unwrap().pixels()
        );
    }
    let sent = common::within(20, "the flooding client is dropped", move || {
        flooding.join().unwrap()
    });
    assert!(sent > 0);
    assert!(good.stats().unwrap().shared.is_some());
    assert_eq!(cache.stats().cpu.failures, 0);
}

#[test]
fn no_client_can_write_the_shared_pixels() {
    let (_tmp, names, cache, client) = owner_and_client();
    let view = client.bitmap(&names[0]).unwrap();
    let before = cache.bitmap(&names[0]).unwrap().pixels().to_vec();
    let page = view.pixels().as_ptr() as usize & !4095;
    // SAFETY: mprotect of a page of the view's own mapping; it must fail, changing nothing.
    let r = unsafe {
        libc::mprotect(
            page as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    assert_eq!(r, -1, "the view's mapping could be made writable");
    // (That a descriptor reopened read-write cannot be mapped writable either is checked in
    // the unit tests of `os/shm.rs`.)
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains("/memfd:texcache"), "{maps}");
    assert_eq!(view.pixels(), &before[..]);
    assert_eq!(cache.bitmap(&names[0]).unwrap().pixels(), &before[..]);
}

#[test]
fn random_traffic_from_several_processes_is_accounted_as_one_process_would() {
    if let Some((what, socket, media)) = role() {
        return run_child(&what, &socket, &media);
    }
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    let socket = tmp.path().join("shared.sock");
    let trace = tmp.path().join("owner.trace");
    let mut cfg = config(&media, Path::new(""));
    cfg.stats.trace = trace.clone();
    cfg.loader.threads = 1;
    // Room for about half the pictures: evictions all along.
    cfg.cpu.budget.0 = 6 * 96 * 64 * 4;
    cfg.shared.socket = socket.clone();
    let cache = Cache::new(cfg.clone()).unwrap();
    let kids: Vec<Child> = (0..3)
        .map(|_| {
            child(
                "random_traffic_from_several_processes_is_accounted_as_one_process_would",
                "random",
                &socket,
                &media,
            )
            .spawn()
            .unwrap()
        })
        .collect();
    // The owner's own traffic meanwhile.
    let mut own = 0u64;
    for i in 0..200 {
        let h = cache.bitmap(&names[i * 7 % names.len()]).unwrap();
        own += 1;
        drop(h);
    }
    let mut acquires = own;
    for k in kids {
        let out = k.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        let n = text
            .lines()
            .find_map(|l| l.split_once("ACQUIRES ").map(|(_, n)| n.trim().to_string()));
        acquires += n.expect("the child's count").parse::<u64>().unwrap();
    }
    cache.wait_prefetch();
    eventually(1, "every client's holds released", || {
        let s = cache.stats();
        s.cpu.in_use_entries == 0 && s.shared.unwrap().clients.is_empty()
    });
    let s = cache.stats_with_entries();
    // Every acquire of every process is one of the owner's hits, misses or waits, prefetches
    // (which acquire too) besides; the bytes add up to the entries; nothing failed.
    assert!(
        s.cpu.hits + s.cpu.misses + s.cpu.coalesced >= acquires,
        "{s:?}"
    );
    assert_eq!(s.cpu.failures, 0);
    let entry_bytes: u64 = s
        .entries
        .iter()
        .flatten()
        .map(|e| match e {
            texcache::observe::stats::Entry::Cached(c) if c.tier == "cpu" => c.bytes,
            _ => 0,
        })
        .sum();
    assert_eq!(s.cpu.used, entry_bytes);
    assert!(s.cpu.used <= s.cpu.budget);
    // The same operations, in the order the owner's tier took them, replayed through a cache
    // in one process: the same tier at the end.
    cache.flush_trace().unwrap();
    let recorded = texcache::trace::Trace::load(&trace).unwrap();
    let mut single = cfg.clone();
    single.stats.trace = PathBuf::new();
    single.shared.socket = PathBuf::new();
    let replay = Cache::new(single).unwrap();
    texcache::trace::Replayer::new(&replay)
        .run(&recorded, |_, _| {})
        .unwrap();
    let r = replay.stats();
    assert_eq!(
        (
            r.cpu.used,
            r.cpu.entries,
            r.cpu.evictions,
            r.cpu.evicted_bytes,
            r.cpu.misses
        ),
        (
            s.cpu.used,
            s.cpu.entries,
            s.cpu.evictions,
            s.cpu.evicted_bytes,
            s.cpu.misses
        ),
        "replayed {r:?}\nshared {s:?}"
    );
    // Hits the clients served themselves, from their hold tables, are not the tier's events
    // (nothing to record or replay): the rest are.
    let client_hits = s.shared.as_ref().unwrap().client_hits;
    assert_eq!(
        r.cpu.hits + r.cpu.coalesced,
        s.cpu.hits + s.cpu.coalesced - client_hits
    );
}

/// A sharing cache decodes straight into shared memory: decoding a big picture raises the
/// owner's peak of resident memory no more than decoding it into a private cache does (a
/// private copy besides would add the picture's bytes), and the pixels are in shared memory.
#[test]
fn a_sharing_cache_decodes_into_shared_memory_with_no_private_copy() {
    if let Some((what, socket, media)) = role() {
        return run_child(&what, &socket, &media);
    }
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    samples::write_pictures(&media, 3, 2400, 1600, true).unwrap();
    let socket = tmp.path().join("peak.sock");
    let out = child(
        "a_sharing_cache_decodes_into_shared_memory_with_no_private_copy",
        "peak",
        &socket,
        &media,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "the child failed");
    let out = String::from_utf8(out.stdout).unwrap();
    let mut peaks = std::collections::HashMap::new();
    for line in out.lines() {
        if let Some((_, rest)) = line.split_once("PEAK ") {
            let f: Vec<&str> = rest.split(' ').collect();
            let n = |i: usize| f[i].parse::<i64>().unwrap();
            peaks.insert((f[0].to_string(), f[1].to_string()), (n(2), n(3), n(4)));
        }
    }
    assert_eq!(peaks.len(), 12, "{out}");
    const MIB: i64 = 1 << 20;
    for ((kind, what), &(bytes, _, shmem)) in &peaks {
        if kind == "shared" {
            let (_, heap_peak, heap_shmem) = peaks[&("heap".to_string(), what.clone())];
            let (_, peak, _) = peaks[&(kind.clone(), what.clone())];
            println!("{what}: {bytes} bytes, peak +{heap_peak} private, +{peak} shared");
            assert!(
                shmem >= bytes,
                "{what}: {shmem} bytes of shared memory for {bytes}"
            );
            assert!(
                heap_shmem < MIB,
                "{what}: a private decode used shared memory"
            );
            assert!(
                peak < heap_peak + MIB,
                "{what}: the shared decode's peak {peak} above the private one's {heap_peak}"
            );
        }
    }
}

#[test]
fn a_picture_decoded_before_sharing_began_is_served_from_shared_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    let cache = Cache::new(config(&media, Path::new(""))).unwrap();
    let early = cache.bitmap(&names[0]).unwrap();
    let socket = tmp.path().join("later.sock");
    cache.share(&socket).unwrap();
    let client = texcache::shared::connect(&socket).unwrap();
    let view = client.bitmap(&names[0]).unwrap();
    assert_eq!(view.pixels(), early.pixels());
    // Loaded again into shared memory (the early bitmap, still held, counts until it goes).
    let s = cache.stats();
    assert_eq!(s.cpu.misses, 2);
    assert_eq!(s.cpu.in_use, 2 * early.pixels().len() as u64);
    drop((early, view));
    eventually(1, "the client's hold released", || {
        cache.stats().cpu.in_use == 0
    });
    assert_eq!(cache.stats().cpu.used, 96 * 64 * 4);
}

#[test]
fn a_client_hits_what_it_knows_without_asking_the_owner_until_the_owner_lets_it_go() {
    let (_tmp, names, cache, client) = owner_and_client();
    let first = client.bitmap(&names[0]).unwrap();
    let requests = || cache.stats().shared.unwrap().clients[0].requests;
    let before = (requests(), cache.stats().cpu.hits);
    // Hits of a picture it holds, or held: no request; each one of the owner's hits.
    let second = client.bitmap(&names[0]).unwrap();
    assert_eq!(second.pixels(), first.pixels());
    assert_eq!(first.holds(), 2);
    drop((first, second));
    let third = client.bitmap(&names[0]).unwrap();
    assert_eq!(third.holds(), 1);
    let s = cache.stats();
    assert_eq!(requests(), before.0, "no request for a hit");
    assert_eq!(s.cpu.hits, before.1 + 2);
    assert_eq!(s.shared.as_ref().unwrap().client_hits, 2);
    // Still held: in use in the owner's tier, not evictable.
    assert_eq!(s.cpu.in_use_entries, 1);
    assert_eq!(cache.trim(texcache::TierKind::Cpu, 0).used, s.cpu.used);
    drop(third);
    // Released: the owner lets go when it reconciles (statistics, trims, loads), and the
    // client's next acquire asks it again.
    assert_eq!(cache.stats().cpu.in_use_entries, 0);
    assert_eq!(cache.trim(texcache::TierKind::Cpu, 0).used, 0);
    let again = client.bitmap(&names[0]).unwrap();
    assert_eq!(requests(), before.0 + 1);
    assert_eq!(cache.stats().cpu.misses, 2);
    // A removal makes the client ask again too, and get the picture loaded afresh.
    let misses = cache.stats().cpu.misses;
    assert!(client.remove(&names[0]).unwrap());
    let fresh = client.bitmap(&names[0]).unwrap();
    assert_eq!(fresh.pixels(), again.pixels());
    assert_eq!(cache.stats().cpu.misses, misses + 1);
}

/// The shared tier's socket is made as the control socket (§9): mode 0600, a file that is not
/// a socket (a regular file, a symlink) left untouched and reported, a stale socket replaced,
/// a live one not taken over, and the file gone when the owner ends.
#[test]
fn the_socket_path_is_handled_as_the_control_sockets() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    let socket = tmp.path().join("shared.sock");
    let refused = |what: &str| match Cache::new(config(&media, &socket)) {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Socket { .. }) && e.to_string().contains("shared.sock"),
            "{what}: {e}"
        ),
        Ok(_) => panic!("{what}: served"),
    };
    std::fs::write(&socket, "precious").unwrap();
    refused("a regular file");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "precious");
    std::fs::remove_file(&socket).unwrap();
    let target = tmp.path().join("target");
    std::fs::write(&target, "target").unwrap();
    std::os::unix::fs::symlink(&target, &socket).unwrap();
    refused("a symlink");
    assert!(std::fs::symlink_metadata(&socket).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "target");
    std::fs::remove_file(&socket).unwrap();
    // A stale socket: bound, never served, its listener gone.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let cache = owner(&media, &socket);
    let client = texcache::shared::connect(&socket).unwrap();
    assert!(client.bitmap(&names[0]).is_ok());
    refused("a live socket");
    assert!(
        client.bitmap(&names[1]).is_ok(),
        "the first owner still serves"
    );
    drop((client, cache));
    assert!(
        std::fs::symlink_metadata(&socket).is_err(),
        "the socket file is left"
    );
}

/// A client's hrefs are confined as the owner's own are: with `confine = true`, paths and
/// symlinks leading out of `mediadir` are `OutsideMediadir` errors.
#[test]
fn a_clients_hrefs_are_confined_by_the_owners_config() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let names = pictures(&media);
    std::fs::copy(media.join(&names[0]), tmp.path().join("secret.png")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.png"), media.join("link.png")).unwrap();
    let socket = tmp.path().join("shared.sock");
    let mut cfg = config(&media, &socket);
    cfg.confine = true;
    let _cache = Cache::new(cfg).unwrap();
    let client = texcache::shared::connect(&socket).unwrap();
    let outside = tmp.path().join("secret.png").display().to_string();
    for href in ["../secret.png", outside.as_str(), "link.png"] {
        match client.bitmap(href) {
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::OutsideMediadir { .. }),
                "{href}: {e}"
            ),
            Ok(_) => panic!("{href}: read outside mediadir"),
        }
    }
    assert!(client.bitmap(&names[0]).is_ok());
}

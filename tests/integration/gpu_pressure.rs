//! `pressure.gpu_retry`: a texture upload that fails for GPU memory evicts unused textures (half
//! of their bytes, then all) and tries again. The failure is real: a child process bounds its
//! own address space (RLIMIT_AS) after opening the device, so the software driver's allocation
//! of the texture (lavapipe's device memory is the process's memory) fails. Its own binary,
//! since it changes a process-wide limit in a child.
// These tests need the GPU tier (the default `gpu` feature).
#![cfg(feature = "gpu")]

use crate::common;

use std::process::Command;
use texcache::ErrorKind;
use texcache::{Cache, Config};

const SIDE: u32 = 4096; // 64 MiB an RGBA texture

fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn an_upload_out_of_gpu_memory_evicts_unused_textures_and_succeeds() {
    if std::env::var_os("TEXCACHE_GPU_PRESSURE_CHILD").is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                concat!(
                    module_path!(),
                    "::an_upload_out_of_gpu_memory_evicts_unused_textures_and_succeeds"
                )
                .split_once("::")
                .unwrap()
                .1,
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TEXCACHE_GPU_PRESSURE_CHILD", "1")
            .env("MALLOC_ARENA_MAX", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && (text.contains("CHILD OK") || text.contains("SKIPPED")),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let Some(gpu) = common::gpu() else {
        println!("SKIPPED");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // One 64 MiB picture behind five names: five textures of one size.
    common::png(tmp.path(), "p.png", SIDE, SIDE);
    let names: Vec<String> = (0..5).map(|i| format!("p{i}.png")).collect();
    for n in &names {
        std::os::unix::fs::symlink(tmp.path().join("p.png"), tmp.path().join(n)).unwrap();
    }
    let mut cfg = Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.stats.history_interval_ms = 0;
    cfg.cpu.budget.0 = 1 << 40;
    cfg.gpu.budget.0 = 1 << 40; // no budget evictions: only the retry evicts
    let cache = Cache::new(cfg).unwrap();
    cache.bind_gpu(gpu.clone());
    // Every bitmap decoded first, and four textures uploaded (and unused): below, only the
    // fifth texture and its upload allocate.
    for n in &names {
        drop(cache.bitmap(n).unwrap());
    }
    for n in &names[..4] {
        drop(cache.texture(n).unwrap());
    }
    let _ = gpu.device().poll(wgpu::PollType::wait_indefinitely());
    // Room for 24 MiB more: not for a 64 MiB texture, until evicting half of the unused
    // textures (128 MiB) gives that memory back; then for the texture and its 64 MiB upload
    // staging.
    let limit = vm_size() + (24 << 20);
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit for the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
    let got = cache.texture(&names[4]).map(drop);
    let s = cache.stats();
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) };
    println!("{s}");
    assert_eq!(
        s.gpu.evicted_bytes, s.pressure.gpu_retry_evicted_bytes,
        "only the retries evicted"
    );
    assert_eq!(s.gpu.evicted_bytes, s.gpu.evictions * (64 << 20));
    match got {
        // A driver that hands freed memory back: half of the unused textures made room (or,
        // failing that, all of them).
        Ok(()) => {
            let (retries, evictions) = (s.pressure.gpu_retries, s.gpu.evictions);
            assert!(
                (retries, evictions) == (1, 2) || (retries, evictions) == (2, 4),
                "half (2 of 4 textures), then all: {s}"
            );
            assert_eq!(s.gpu.failures, 0);
        }
        // Lavapipe keeps the memory of destroyed textures in its allocator's blocks, so under
        // an address-space limit even evicting everything leaves no room: both retries ran
        // (half the unused bytes, then all), and the error is the typed one.
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::GpuOutOfMemory { .. }),
                "{e:?}"
            );
            assert!(e.to_string().contains(&names[4]), "{e}");
            assert_eq!(s.pressure.gpu_retries, 2, "{s}");
            assert_eq!(s.gpu.evictions, 4, "half, then all of the unused textures");
            assert_eq!((s.gpu.entries, s.gpu.failures), (0, 1));
            println!("retried twice, then out of memory (a driver that keeps freed memory)");
        }
    }
    // With the limit gone the cache goes on: the device is not lost and the texture uploads.
    let t = cache.texture(&names[4]).unwrap();
    assert_eq!((t.width(), t.height()), (SIDE, SIDE));
    println!("CHILD OK");
}

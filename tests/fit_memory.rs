//! A fitted decode never holds the full-size picture (§2a): decoding the 3072x2048 JPEG into
//! 768x512 keeps the process's peak resident memory within 16 MiB of the fitted bitmap plus
//! what the process held before. (The full-size RGBA picture alone is 24 MiB.) Its own test
//! binary, since peak RSS is the whole process's.

mod common;

#[test]
fn a_fitted_jpeg_decode_never_holds_the_full_size_picture() {
    let path = common::corpus().join("photos/kodim23_3072x2048.jpg");
    let bytes = std::fs::read(&path).unwrap();
    let mut options = texcache::picture::DecodeOptions::new(1 << 28);
    options.fit = Some((768, 512));
    // Warm up the code paths (and the allocator's arenas) on a small box first.
    let mut warm = options;
    warm.fit = Some((8, 8));
    drop(texcache::picture::decode("warm.jpg", &bytes, &warm).unwrap());
    // Reset the peak to what is resident now (Linux: "5" resets VmHWM).
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("cannot reset the peak RSS here; skipping");
        return;
    }
    let baseline = common::status("VmHWM:");
    let b = texcache::picture::decode("big.jpg", &bytes, &options).unwrap();
    let peak = common::status("VmHWM:");
    let fitted = texcache::tier::Resource::bytes(&b);
    assert_eq!((b.width(), b.height(), fitted), (768, 512, 768 * 512 * 4));
    let over = peak.saturating_sub(baseline + fitted);
    assert!(
        over <= 16 << 20,
        "peak {} MiB over the fitted bitmap and the baseline",
        over >> 20
    );
    eprintln!(
        "fitted decode: peak {} KiB over fitted bitmap + baseline",
        over >> 10
    );
}

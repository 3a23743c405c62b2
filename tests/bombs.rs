//! Decompression bombs: headers that claim 100000x100000 pixels (PNG) or 65500x65500 (JPEG, its
//! largest) are refused from the header, and an IDAT that inflates to 256 MiB behind a 64x64
//! header does not make the process grow. Its own test binary with one test, so that the
//! process's peak RSS (VmHWM) measures this test alone.

mod common;

use texcache::ErrorKind;

/// The process's peak resident set, in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A gray PNG of `w`x`h` whose one IDAT chunk holds `idat`.
fn png(w: u32, h: u32, idat: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A zlib stream that inflates to `n` zero bytes (n = 1 + k * 258): one fixed-Huffman block of
/// a literal 0 and then k copies of <length 258, distance 1>, 13 bits each.
fn zlib_zeros(k: usize) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = fixed Huffman
    bits.code(0b0011_0000, 8); // literal 0
    for _ in 0..k {
        bits.code(0b1100_0101, 8); // length code 285 = 258
        bits.code(0, 5); // distance code 0 = 1
    }
    bits.code(0, 7); // end of block (256)
    let n = 1 + k as u64 * 258;
    let (a, b) = (1u64, n % 65521);
    let mut out = vec![0x78, 0x01];
    out.extend_from_slice(&bits.finish());
    out.extend_from_slice(&(((b << 16) | a) as u32).to_be_bytes());
    out
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}
impl BitWriter {
    /// `len` bits of `v`, least significant first (header fields).
    fn put(&mut self, v: u64, len: u32) {
        self.acc |= v << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code, most significant bit first.
    fn code(&mut self, v: u64, len: u32) {
        let rev = (0..len).fold(0, |r, i| r | ((v >> i) & 1) << (len - 1 - i));
        self.put(rev, len);
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

#[test]
fn bombs_are_refused_or_bounded_and_memory_stays_small() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A real 64x64 image whose stream is followed by 256 MiB of zeros in the same IDAT.
    let inflating = zlib_zeros((256 << 20) / 258);
    std::fs::write(dir.join("header.png"), png(100_000, 100_000, &inflating)).unwrap();
    std::fs::write(dir.join("idat.png"), png(64, 64, &inflating)).unwrap();
    let mut jpeg = std::fs::read(common::corpus().join("photos/kodim23.jpg")).unwrap();
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]);
    std::fs::write(dir.join("header.jpg"), jpeg).unwrap();

    // The stream writer is right: 1 + 4 * 258 zeros are exactly one row of 1032 gray pixels.
    std::fs::write(dir.join("row.png"), png(1032, 1, &zlib_zeros(4))).unwrap();
    let cache = common::cache(dir, 1 << 30);
    let row = cache.bitmap("row.png").unwrap();
    assert!(row.width() == 1032 && row.pixels().iter().all(|&p| p == 0));
    drop(row);
    let before = peak_rss();
    for (name, w, h) in [
        ("header.png", 100_000, 100_000),
        ("header.jpg", 65_500, 65_500),
    ] {
        match cache.bitmap(name) {
            Err(e) if matches!(e.kind(), ErrorKind::TooManyPixels { .. }) => {
                assert!(e.to_string().contains(&format!("{w}x{h}")), "{e}");
                assert!(e.to_string().starts_with(name), "{e}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // Either the 64x64 picture (its data comes first) or a typed error about the excess.
    match cache.bitmap("idat.png") {
        Ok(b) => assert_eq!((b.width(), b.height(), b.bytes()), (64, 64, 64 * 64)),
        Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
            assert!(e.to_string().contains("idat.png"), "{e}")
        }
        Err(other) => panic!("idat.png: {other:?}"),
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "peak RSS grew by {} MiB decoding bombs",
        grown >> 20
    );
    let s = cache.stats().cpu;
    assert!(s.used <= 64 * 64 + 1032, "{s:?}");
}

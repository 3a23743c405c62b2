#!/usr/bin/env python3
"""Decode throughput of Pillow on the files the `miss` bench decodes (../shared/corpus/photos),
to RGBA like texcache (`convert("RGBA")`, which also forces the decode). Prints one line per
file: median milliseconds and megapixels per second, to set against `cargo bench --bench miss`
(its `raw_decode` and `texcache_miss` ids report Melem/s = megapixels per second).

Then the `fit` bench's job with Pillow's own fast path: `Image.draft` (libjpeg's DCT scaling for
JPEG) then `thumbnail((768, 512), Lanczos)`, to set against `cargo bench --bench fit` (its
`texcache_fit` ids).

Run by benches/report.sh when Pillow is installed (`pip install pillow`)."""

import os
import statistics
import sys
import time

try:
    from PIL import Image
except ImportError:
    sys.exit("Pillow is not installed (pip install pillow)")

FILES = ["kodim23.png", "kodim23.jpg", "Fantasy_Digital_Painting.png", "kodim23_3072x2048.jpg"]
HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "..", "..", "shared", "corpus", "photos")


def decode(path):
    with open(path, "rb") as f:
        data = f.read()  # read the file each time, as the Rust benches do
    import io

    return Image.open(io.BytesIO(data)).convert("RGBA")


def fit(path, box=(768, 512)):
    with open(path, "rb") as f:
        data = f.read()
    import io

    img = Image.open(io.BytesIO(data))
    img.draft("RGB", box)  # JPEG: decode at the smallest DCT scale still at least the box
    img = img.convert("RGBA")
    img.thumbnail(box, Image.Resampling.LANCZOS)
    return img


def median_ms(job, path):
    """The median of about two seconds of runs (at least 5), in milliseconds."""
    job(path)
    t0 = time.perf_counter()
    job(path)
    once = time.perf_counter() - t0
    runs = max(5, int(2.0 / max(once, 1e-4)))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        job(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, runs


def main():
    print(f"Pillow {Image.__version__}")
    for name in FILES:
        path = os.path.join(PHOTOS, name)
        img = decode(path)
        megapixels = img.width * img.height / 1e6
        ms, runs = median_ms(decode, path)
        print(f"pillow/{name}: {ms:.2f} ms median of {runs}, {megapixels / (ms / 1e3):.1f} Mpx/s")
    for name in ["kodim23_3072x2048.jpg", "Fantasy_Digital_Painting.png"]:
        path = os.path.join(PHOTOS, name)
        ms, runs = median_ms(fit, path)
        size = fit(path).size
        print(f"pillow_fit/{name}: {ms:.2f} ms median of {runs} (draft + thumbnail to {size[0]}x{size[1]})")


if __name__ == "__main__":
    main()

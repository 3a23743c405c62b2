#!/usr/bin/env python3
"""Decode throughput of Pillow on the files the `miss` bench decodes (../shared/corpus/photos),
to RGBA like texcache (`convert("RGBA")`, which also forces the decode). Prints one line per
file: median milliseconds and megapixels per second, to set against `cargo bench --bench miss`
(its `raw_decode` and `texcache_miss` ids report Melem/s = megapixels per second).

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


def main():
    print(f"Pillow {Image.__version__}")
    for name in FILES:
        path = os.path.join(PHOTOS, name)
        img = decode(path)
        megapixels = img.width * img.height / 1e6
        # About two seconds of decoding, at least 5 runs.
        t0 = time.perf_counter()
        decode(path)
        once = time.perf_counter() - t0
        runs = max(5, int(2.0 / max(once, 1e-4)))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            decode(path)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        print(f"pillow/{name}: {median * 1e3:.2f} ms median of {runs}, {megapixels / median:.1f} Mpx/s")


if __name__ == "__main__":
    main()

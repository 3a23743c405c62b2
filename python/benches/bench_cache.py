"""texcache from Python against what a Python user would write instead, in one run.

    python python/benches/bench_cache.py [--rounds 5]

Needs numpy and the texcache package; Pillow for the peers (and OpenCV, opencv-python-headless,
for its cold-load ratio, when installed). Every measurement is repeated in interleaved rounds
and the median is reported, with ratios, since the ratios are what hold on a noisy machine:

- hit: `np.asarray(cache.bitmap(h))` on a resident picture, against a `functools.lru_cache`
  around `np.asarray(Image.open(f).convert("RGBA"))` (which bounds entries, not bytes) on a hit;
  and `cache.array(h)`, the same array in one call; and, for scale, what numpy alone spends
  making an array through the buffer protocol (`np.asarray(memoryview(a))` of a numpy array);
- cold: a first load of each corpus photo (`cache.bitmap` on a fresh cache, then `np.asarray`),
  against Pillow's `np.asarray(Image.open(f).convert("RGBA"))` and OpenCV's `cv2.imread`.
"""

import argparse
import functools
import pathlib
import statistics
import time

import numpy as np

import texcache

PHOTOS = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "photos"


def per_call(f, n):
    t = time.perf_counter_ns()
    for _ in range(n):
        f()
    return (time.perf_counter_ns() - t) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from PIL import Image

    try:
        import cv2
    except ImportError:
        cv2 = None
    files = sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png") and "3072" not in p.name)
    hit_file = PHOTOS / "kodim23.jpg"

    cache = texcache.Cache(mediadir=str(PHOTOS), cpu_budget="1 GiB")
    np.asarray(cache.bitmap(hit_file.name))

    @functools.lru_cache(maxsize=64)
    def lru_load(path):
        return np.asarray(Image.open(path).convert("RGBA"))

    # The names, made once: each side's call gets its key ready-made.
    hit_href, hit_path = hit_file.name, str(hit_file)
    lru_load(hit_path)
    # numpy's own price for an array through the buffer protocol, of one of its own arrays.
    held = lru_load(hit_path)
    results = {k: [] for k in ("hit", "array hit", "buffer floor", "lru hit", "cold", "pillow", "opencv")}
    for _ in range(args.rounds):
        results["hit"].append(per_call(lambda: np.asarray(cache.bitmap(hit_href)), 20000))
        results["array hit"].append(per_call(lambda: cache.array(hit_href), 20000))
        results["buffer floor"].append(per_call(lambda: np.asarray(memoryview(held)), 20000))
        results["lru hit"].append(per_call(lambda: lru_load(hit_path), 20000))

        def cold():
            c = texcache.Cache(mediadir=str(PHOTOS), cpu_budget="1 GiB", pressure_trim=False, stats_history_interval_ms=0)
            for f in files:
                np.asarray(c.bitmap(f.name))

        results["cold"].append(per_call(cold, 3) / len(files))
        results["pillow"].append(
            per_call(lambda: [np.asarray(Image.open(f).convert("RGBA")) for f in files], 3) / len(files)
        )
        if cv2 is not None:
            results["opencv"].append(per_call(lambda: [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files], 3) / len(files))
    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"photos: {len(files)} files of {PHOTOS} (kodim*, the 1488x1486 painting, ... as JPEG and PNG)")
    print(f"hit   texcache {med['hit']:9.0f} ns   lru_cache {med['lru hit']:9.0f} ns   texcache/lru_cache = {med['hit'] / med['lru hit']:.2f}x")
    print(f"hit   cache.array {med['array hit']:6.0f} ns   lru_cache {med['lru hit']:9.0f} ns   texcache/lru_cache = {med['array hit'] / med['lru hit']:.2f}x")
    print(f"floor np.asarray(memoryview(ndarray)) {med['buffer floor']:5.0f} ns = {med['buffer floor'] / med['lru hit']:.2f}x lru_cache (numpy's buffer-protocol path alone)")
    print(f"cold  texcache {med['cold'] / 1e6:9.2f} ms   Pillow    {med['pillow'] / 1e6:9.2f} ms   Pillow/texcache = {med['pillow'] / med['cold']:.2f}x faster")
    if "opencv" in med:
        print(f"cold  OpenCV   {med['opencv'] / 1e6:9.2f} ms   OpenCV/texcache = {med['opencv'] / med['cold']:.2f}x (above 1: texcache faster)")


if __name__ == "__main__":
    main()

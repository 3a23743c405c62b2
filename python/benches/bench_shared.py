"""A data loader's workers with and without a shared cache, in one run (§12).

    python python/benches/bench_shared.py [--pictures 200] [--workers 4] [--epochs 3]

Generates `--pictures` 800x600 JPEGs, then runs the same loader four ways, each with a
`multiprocessing` pool of `--workers` processes (fork) over `--epochs` shuffled epochs; every
item is the picture's RGBA pixels, of which each worker takes a mean (so every pixel is read):

- `pillow`: no cache, Pillow decodes every item (`np.asarray(Image.open(f).convert("RGBA"))`);
- `private`: one texcache per worker (each decodes and keeps its own copy);
- `shared`: one texcache in the main process, shared (`cache.share()`): workers are clients;
- `upfront`: every picture decoded into one numpy array before the epochs (as ultralytics'
  `cache="ram"`), inherited by the forked workers; no budget.

For each: images/s per epoch, and the sum of PSS (`/proc/PID/smaps_rollup`) over the main
process and every worker at the end of the last epoch, so shared pages count once. Then the
latency of one hit of a resident picture (`cache.array(h)`), in the owner's process and in a
client's.
"""

import argparse
import multiprocessing as mp
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import texcache

STATE = {}


def pss(pid):
    """The process's proportional set size, in bytes."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def setup(kind, folder, shared):
    STATE["kind"], STATE["folder"] = kind, folder
    if kind == "private":
        STATE["cache"] = texcache.Cache(mediadir=folder, cpu_budget="1 GiB", stats_history_interval_ms=0)
    elif kind == "shared":
        STATE["cache"] = shared  # inherited: a client of the owner from its first call


def item(name):
    kind = STATE["kind"]
    if kind == "pillow":
        a = np.asarray(Image.open(os.path.join(STATE["folder"], name)).convert("RGBA"))
    elif kind == "upfront":
        a = UPFRONT[INDEX[name]]
    else:
        a = STATE["cache"].array(name)
    return float(a[::7, ::7, 0].mean()) + float(a.sum(dtype=np.uint64) & 1)


UPFRONT = None
INDEX = {}


def run(kind, folder, names, workers, epochs, shared=None):
    global UPFRONT, INDEX
    if kind == "upfront":
        INDEX = {n: i for i, n in enumerate(names)}
        first = np.asarray(Image.open(os.path.join(folder, names[0])).convert("RGBA"))
        UPFRONT = np.empty((len(names),) + first.shape, dtype=np.uint8)
        for i, n in enumerate(names):
            UPFRONT[i] = np.asarray(Image.open(os.path.join(folder, n)).convert("RGBA"))
    ctx = mp.get_context("fork")
    rates = []
    with ctx.Pool(workers, initializer=setup, initargs=(kind, folder, shared)) as pool:
        for _ in range(epochs):
            order = list(np.random.permutation(names))
            t = time.perf_counter()
            pool.map(item, order, chunksize=4)
            rates.append(len(order) / (time.perf_counter() - t))
        total = pss(os.getpid()) + sum(pss(p.pid) for p in pool._pool)
    UPFRONT = None
    return rates, total


HIT = """
import sys, time, texcache
c = texcache.connect(sys.argv[1])
a = c.array(sys.argv[2]); del a
n = int(sys.argv[3])
t = time.perf_counter()
for _ in range(n):
    a = c.array(sys.argv[2]); del a
print((time.perf_counter() - t) / n)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pictures", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(1)
        names = []
        for i in range(args.pictures):
            base = rng.integers(0, 255, size=(60, 80, 3), dtype=np.uint8)
            img = Image.fromarray(base).resize((800, 600), Image.BILINEAR)
            name = f"p{i:03}.jpg"
            img.save(os.path.join(d, name), quality=90)
            names.append(name)
        picture = 800 * 600 * 4
        print(f"{args.pictures} pictures of 800x600 ({args.pictures * picture / 2**20:.0f} MiB decoded), "
              f"{args.workers} workers, {args.epochs} epochs")
        results = {}
        for kind in ["pillow", "private", "shared", "upfront"]:
            shared = None
            if kind == "shared":
                shared = texcache.Cache(mediadir=d, cpu_budget="1 GiB", stats_history_interval_ms=0)
                shared.share()
            rates, total = run(kind, d, names, args.workers, args.epochs, shared)
            if shared is not None:
                s = shared.stats()["cpu"]
                extra = f"; owner: {s['misses']} decodes, {s['used'] / 2**20:.0f} MiB cached"
            else:
                extra = ""
            results[kind] = (rates, total)
            print(f"{kind:8} images/s per epoch " + ", ".join(f"{r:7.0f}" for r in rates)
                  + f"; PSS sum {total / 2**20:7.1f} MiB{extra}")
            if kind == "shared":
                own = texcache.Cache(mediadir=d, stats_history_interval_ms=0)
                a = own.array(names[0]); del a
                n = 20000
                t = time.perf_counter()
                for _ in range(n):
                    a = own.array(names[0]); del a
                owner_hit = (time.perf_counter() - t) / n
                out = subprocess.run([sys.executable, "-c", HIT, shared.shared, names[0], str(n)],
                                     capture_output=True, text=True, check=True)
                client_hit = float(out.stdout)
                results["hit"] = (owner_hit, client_hit)
                del shared
        (pr, pp), (sr, sp), (ur, up) = results["private"], results["shared"], results["upfront"]
        owner_hit, client_hit = results["hit"]
        later = lambda r: statistics.mean(r[1:]) if len(r) > 1 else r[0]
        print(f"shared PSS / private PSS: {sp / pp:.2f}x; shared epochs 2-{args.epochs} images/s / "
              f"up-front buffer's: {later(sr) / later(ur):.2f}x; "
              f"hit: owner {owner_hit * 1e6:.2f} us, client {client_hit * 1e6:.1f} us")


if __name__ == "__main__":
    main()

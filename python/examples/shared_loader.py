"""Worker processes that share one cache: a dataset over a folder of photos whose workers view
the owner's decoded pictures (one decode and one copy of each for all of them).

    python shared_loader.py [--dir DIR] [--budget "256 MiB"] [--workers 4] [--epochs 3]

The main process owns the cache and shares it (`cache.share()`); the dataset holds it, and a
shared `Cache` pickles to a client of its owner, so the workers (torch's `DataLoader` when
torch is installed, else a `multiprocessing` pool) need nothing but `cache.array(href)`, under
every start method. Each epoch prints the images per second and the owner's counts: after the
first epoch, the workers' requests are hits.
"""

import argparse
import multiprocessing as mp
import pathlib
import time

import numpy as np

import texcache

try:
    import torch
    import torch.utils.data
except ImportError:  # a multiprocessing pool instead
    torch = None

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "photos"


class SharedPhotos:
    """Photos of `folder`, fitted into `fit`, through one cache shared by every process."""

    def __init__(self, folder, budget="256 MiB", fit=(256, 256)):
        self.folder = pathlib.Path(folder)
        self.hrefs = sorted(p.name for p in self.folder.iterdir() if p.suffix.lower() in EXTENSIONS)
        if not self.hrefs:
            raise ValueError(f"no pictures in {self.folder}")
        self.cache = texcache.Cache(mediadir=str(self.folder), cpu_budget=budget, stats_history_interval_ms=0)
        self.socket = self.cache.share()
        self.fit = fit

    def __len__(self):
        return len(self.hrefs)

    def __getitem__(self, i):
        """The i-th photo: a read-only view of the owner's pixels (copied into a tensor with
        torch, whose collate stacks a batch anyway)."""
        a = self.cache.array(self.hrefs[i], fit=self.fit)
        return torch.from_numpy(np.array(a)) if torch is not None else float(a[..., 0].mean())


DATA = None


def keep(data):
    """A pool worker's initializer: the dataset, unpickled once in the worker (its cache a
    client of the owner's)."""
    global DATA
    DATA = data


def item(i):
    return DATA[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=str(DEFAULT_DIR))
    ap.add_argument("--budget", default="256 MiB")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--start", default="spawn", choices=["fork", "spawn", "forkserver"])
    args = ap.parse_args()
    data = SharedPhotos(args.dir, budget=args.budget)
    print(f"{len(data)} photos, shared at {data.socket}; workers: {args.workers} ({args.start}), "
          f"{'torch DataLoader' if torch else 'multiprocessing pool'}")
    ctx = mp.get_context(args.start)
    pool = None if torch else ctx.Pool(args.workers, initializer=keep, initargs=(data,))
    try:
        for epoch in range(args.epochs):
            order = np.random.permutation(len(data))
            started = time.perf_counter()
            if torch is not None:
                loader = torch.utils.data.DataLoader(
                    data, batch_size=1, sampler=order.tolist(), num_workers=args.workers,
                    multiprocessing_context=ctx, collate_fn=lambda b: b,
                )
                seen = sum(len(b) for b in loader)
            else:
                seen = len(pool.map(item, order.tolist(), chunksize=4))
            rate = seen / (time.perf_counter() - started)
            cpu = data.cache.stats()["cpu"]
            print(f"epoch {epoch}: {seen} photos, {rate:.0f} images/s; owner: misses {cpu['misses']}, "
                  f"hits {cpu['hits']}, coalesced {cpu['coalesced']}, {cpu['used'] >> 20} MiB used")
    finally:
        if pool is not None:
            pool.close()
            pool.join()


if __name__ == "__main__":
    main()

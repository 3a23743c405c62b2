"""A training-style loop over a folder of photos, with texcache bounding the memory.

    python photo_dataset.py [--dir DIR] [--budget "64 MiB"] [--epochs 3] [--serve SOCKET]

`PhotoDataset` is shaped like a `torch.utils.data.Dataset` (`__len__`, `__getitem__`): each item
is a photo fitted into 256x256 (decoded at that size, so it costs 256 KiB of budget, not the
photo's full size), centre-cropped to 224x224. `batches()` prefetches the next batch in the
background while the current one is used. Without torch it yields numpy arrays; with torch
installed, tensors made with `torch.from_dlpack` (no copy of the cached pixels).

With `--serve SOCKET`, the cache answers `texcache stats --socket SOCKET` (or
`python stats_table.py SOCKET`) while the loop runs.
"""

import argparse
import pathlib
import time

import numpy as np

import texcache

try:
    import torch
except ImportError:  # numpy alone is enough
    torch = None

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "photos"


class PhotoDataset:
    """Photos of `folder`, decoded through one bounded cache."""

    def __init__(self, folder, budget="64 MiB", fit=(256, 256), crop=224):
        self.folder = pathlib.Path(folder)
        self.hrefs = sorted(p.name for p in self.folder.iterdir() if p.suffix.lower() in EXTENSIONS)
        if not self.hrefs:
            raise ValueError(f"no pictures in {self.folder}")
        self.cache = texcache.Cache(mediadir=str(self.folder), cpu_budget=budget)
        self.fit, self.crop = fit, crop

    def __len__(self):
        return len(self.hrefs)

    def __getitem__(self, i):
        """The i-th photo, fitted and centre-cropped: an (crop, crop, 4) uint8 array, or a
        tensor with torch. A view of the cached pixels while it fits the crop; a crop copies."""
        bm = self.cache.bitmap(self.hrefs[i], fit=self.fit)
        a = np.asarray(bm)
        h, w = a.shape[:2]
        c = min(self.crop, h, w)
        top, left = (h - c) // 2, (w - c) // 2
        a = a[top : top + c, left : left + c]
        if torch is not None:
            return torch.from_dlpack(np.ascontiguousarray(a))
        return a

    def batches(self, batch_size=4, order=None):
        """Batches of items in `order` (default: a shuffle), the next one prefetched."""
        order = list(order) if order is not None else list(np.random.permutation(len(self)))
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for n, chunk in enumerate(chunks):
            if n + 1 < len(chunks):
                self.cache.prefetch([self.hrefs[j] for j in chunks[n + 1]], fit=self.fit)
            yield [self[j] for j in chunk]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=str(DEFAULT_DIR))
    ap.add_argument("--budget", default="64 MiB")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--serve", help="serve the control socket at this path")
    args = ap.parse_args()
    data = PhotoDataset(args.dir, budget=args.budget)
    if args.serve:
        data.cache.serve(args.serve)
        print(f"serving {args.serve}: texcache stats --socket {args.serve}")
    started = time.perf_counter()
    for epoch in range(args.epochs):
        seen = 0
        for batch in data.batches():
            seen += len(batch)
            _ = sum(float(x[..., 0].mean()) for x in batch)  # "train"
        cpu = data.cache.stats()["cpu"]
        print(
            f"epoch {epoch}: {seen} photos, cache {cpu['used'] >> 10} KiB of {cpu['budget'] >> 10} KiB, "
            f"hits {cpu['hits']}, misses {cpu['misses']}, evictions {cpu['evictions']}"
        )
    print(f"{time.perf_counter() - started:.2f} s; arrays are {'torch tensors' if torch else 'numpy arrays'}")


if __name__ == "__main__":
    main()

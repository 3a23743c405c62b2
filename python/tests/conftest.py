"""Shared helpers: the corpus, a PNG writer (pure Python, so the tests need numpy only)."""

import os
import pathlib
import struct
import zlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"


def write_png(path, pixels):
    """Writes an (h, w, 4) uint8 array as an RGBA PNG."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
    pathlib.Path(path).write_bytes(png)


def picture(i, w=64, h=64):
    """A picture that differs from every other i."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(h, w, 4), dtype=np.uint8)


@pytest.fixture
def corpus():
    if not CORPUS.is_dir():
        pytest.fail(f"the test corpus is missing: {CORPUS} (../shared/corpus beside the repository)")
    return CORPUS


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

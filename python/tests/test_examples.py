"""The examples run: the training-style loop over the corpus photos, and the stats table of a
running cache through its control socket."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

import texcache
from conftest import picture, write_png

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))


def test_the_dataset_loop_stays_in_its_budget_and_prefetches(corpus):
    from photo_dataset import PhotoDataset

    data = PhotoDataset(corpus / "photos", budget="1 MiB")
    assert len(data) >= 10
    seen = 0
    for _ in range(2):
        for batch in data.batches(batch_size=3):
            for x in batch:
                a = np.asarray(x)
                assert a.shape[2] == 4 and a.shape[0] <= 224 and a.shape[1] <= 224
                seen += 1
        cpu = data.cache.stats()["cpu"]
        assert cpu["used"] <= cpu["budget"]
    assert seen == 2 * len(data)
    cpu = data.cache.stats()["cpu"]
    assert cpu["evictions"] > 0 and cpu["misses"] >= len(data)
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "photo_dataset.py"), "--dir", str(corpus / "photos"), "--epochs", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "epoch 0:" in out.stdout


def test_the_stats_table_reads_a_running_cache(tmp_path):
    write_png(tmp_path / "a.png", picture(1))
    cache = texcache.Cache(mediadir=str(tmp_path), cpu_budget="1 MiB")
    sock = tmp_path / "app.sock"
    cache.serve(sock)
    held = np.asarray(cache.bitmap("a.png"))
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "stats_table.py"), str(sock)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("tier") and lines[1].startswith("cpu")
    assert "16.0 KiB" in lines[1] and " 1 " in lines[1], out.stdout
    del held


def test_the_shared_loader_decodes_each_photo_once_for_all_workers(corpus):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "shared_loader.py"), "--dir", str(corpus / "photos"),
         "--epochs", "2", "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l.startswith("epoch")]
    assert len(lines) == 2
    photos = int(lines[0].split()[2])
    # Each photo decoded once, by the owner, for both workers and both epochs.
    assert f"misses {photos}," in lines[0] and f"misses {photos}," in lines[1], out.stdout

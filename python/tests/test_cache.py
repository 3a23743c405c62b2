"""The Python package over the real library (§11 of docs/reference.md): zero-copy views and their lifetimes,
threads, every error class, and flat memory."""

import ctypes
import gc
import os
import random
import threading
import weakref
from collections import deque

import numpy as np
import pytest

import texcache
from conftest import picture, rss, write_png

PHOTOS = ["kodim02", "kodim07", "kodim17", "kodim23", "Fantasy_Digital_Painting"]


def test_arrays_are_the_rust_bitmaps_of_the_corpus_photos(corpus):
    cache = texcache.Cache(mediadir=str(corpus / "photos"), cpu_budget="256 MiB")
    for name in PHOTOS:
        for ext in ("png", "jpg"):
            href = f"{name}.{ext}"
            bm = cache.bitmap(href)
            a = np.asarray(bm)
            assert a.dtype == np.uint8 and a.shape == (bm.height, bm.width, 4) == bm.shape
            assert not a.flags.writeable, "views of cached pixels are read-only"
            with pytest.raises(ValueError):
                a[0, 0, 0] = 1
            # The same pixels as the library decodes, through the cache or not.
            assert np.array_equal(a, texcache.decode_file(corpus / "photos" / href))
            # One array per view, all over the one cached copy.
            assert np.asarray(bm).__array_interface__["data"][0] == a.__array_interface__["data"][0]
            d = np.from_dlpack(bm)
            assert np.array_equal(d, a) and d.ctypes.data == a.ctypes.data
    s = cache.stats()["cpu"]
    assert s["misses"] == 2 * len(PHOTOS) and s["entries"] == 2 * len(PHOTOS)


def test_pngs_and_jpegs_equal_pillow_when_it_is_installed(corpus):
    # JPEGs too: the package decodes them with libjpeg-turbo, as Pillow does.
    Image = pytest.importorskip("PIL.Image")
    cache = texcache.Cache(mediadir=str(corpus / "photos"))
    for name in PHOTOS:
        for ext in ("png", "jpg"):
            a = np.asarray(cache.bitmap(f"{name}.{ext}"))
            want = np.asarray(Image.open(corpus / "photos" / f"{name}.{ext}").convert("RGBA"))
            assert np.array_equal(a, want), f"{name}.{ext}"


def in_use(cache):
    return cache.stats()["cpu"]["in_use_entries"]


def test_the_hold_follows_the_views_exactly_and_views_outlive_the_cache(tmp_path):
    write_png(tmp_path / "a.png", picture(1))
    cache = texcache.Cache(mediadir=str(tmp_path))
    bm = cache.bitmap("a.png")
    assert bm.refs == 1 and bm.exports == 0
    # Arrays and memoryviews are exports of the Bitmap (the buffer protocol): they keep the
    # Bitmap, and so its one handle; DLPack tensors hold handles of their own.
    arrays = [np.asarray(bm) for _ in range(3)]
    m = memoryview(bm)
    assert bm.refs == 1 and bm.exports == 4
    assert m.readonly and m.shape == (64, 64, 4) and m.format == "B"
    with pytest.raises(TypeError, match="not writable"):
        ctypes.c_char.from_buffer(bm)  # a writable buffer
    t = np.from_dlpack(bm)
    assert bm.refs == 2
    view_of_view = arrays[0][10:20]  # a slice keeps its base, not a new export
    assert bm.exports == 4
    del arrays[1], m
    gc.collect()
    assert bm.exports == 2
    del t
    gc.collect()
    assert bm.refs == 1 and in_use(cache) == 1

    # `with` releases the Bitmap's own hold at the block's end; its arrays keep the entry
    # until the last of them is collected.
    with cache.bitmap("a.png") as again:
        inner = np.asarray(again)
        assert again.refs == 2
    assert not again.held and again.exports == 1 and bm.refs == 2
    with pytest.raises(ValueError, match="released"):
        np.asarray(again)
    ref = weakref.ref(again)
    del again
    gc.collect()
    assert ref() is not None, "inner's export keeps the released Bitmap"
    assert bm.refs == 2
    with cache.bitmap("a.png") as released_at_once:
        pass
    assert bm.refs == 2, "a Bitmap without exports lets go at the block's end"
    del released_at_once

    expected = picture(1)
    del bm
    gc.collect()
    # Only arrays hold the entry now, and they outlive the Cache object itself.
    assert in_use(cache) == 1
    del cache
    gc.collect()
    for a in (arrays[0], arrays[1], inner, view_of_view):
        assert a.base is not None
    assert np.array_equal(arrays[0], expected) and np.array_equal(inner, expected)
    assert np.array_equal(view_of_view, expected[10:20])
    del inner
    gc.collect()
    assert ref() is None, "the last export gone, the released Bitmap is collected"
    del arrays, view_of_view
    gc.collect()


def test_the_array_call_is_held_until_its_last_view_is_collected(tmp_path):
    write_png(tmp_path / "a.png", picture(3))
    cache = texcache.Cache(mediadir=str(tmp_path))
    a = cache.array("a.png")
    assert np.array_equal(a, picture(3)) and not a.flags.writeable
    assert a.ctypes.data == np.asarray(cache.bitmap("a.png")).ctypes.data
    part = a[5:9]
    del a
    gc.collect()
    assert in_use(cache) == 1
    del part
    gc.collect()
    assert in_use(cache) == 0
    assert cache.array("a.png", fit=(16, 16)).shape == (16, 16, 4)
    with pytest.raises(texcache.NotFound, match="missing.png"):
        cache.array("missing.png")


def test_the_entry_is_released_when_the_last_view_is_collected(tmp_path):
    write_png(tmp_path / "a.png", picture(2))
    cache = texcache.Cache(mediadir=str(tmp_path))
    a = np.asarray(cache.bitmap("a.png"))
    gc.collect()
    assert cache.stats()["cpu"]["in_use"] == 64 * 64 * 4
    del a
    gc.collect()
    s = cache.stats()["cpu"]
    assert (s["in_use"], s["unused"]) == (0, 64 * 64 * 4)


def test_eight_threads_share_one_cache(tmp_path):
    for i in range(40):
        write_png(tmp_path / f"p{i}.png", picture(i, 32, 32))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    cache = texcache.Cache(mediadir=str(tmp_path), cpu_budget=20 * 32 * 32 * 4)
    calls, failures, errors = [0] * 8, [0] * 8, []

    def work(t):
        rng = random.Random(t)
        try:
            for _ in range(1500):
                href = "bad.png" if rng.random() < 0.05 else f"p{rng.randrange(40)}.png"
                calls[t] += 1
                try:
                    a = np.asarray(cache.bitmap(href))
                    assert a[0, 0].tolist() == picture(int(href[1:-4]), 32, 32)[0, 0].tolist()
                except texcache.Corrupt as e:
                    assert "bad.png" in str(e) and e.href == "bad.png"
                    failures[t] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    s = cache.stats()["cpu"]
    assert s["hits"] + s["misses"] + s["coalesced"] == sum(calls), s
    # A failed load counts one failure, however many threads were waiting on it (§3.2).
    assert 0 < s["failures"] <= sum(failures)
    assert s["used"] <= s["budget"] and s["in_use"] == 0


def test_every_error_class(tmp_path, corpus):
    write_png(tmp_path / "big.png", picture(3))
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "notes.png").write_text("hello")
    cache = texcache.Cache(mediadir=str(tmp_path), loader_max_pixels=1000, confine=True)
    cases = [
        ("missing.png", texcache.NotFound, FileNotFoundError),
        ("folder.png", texcache.NotAFile, OSError),
        ("notes.png", texcache.Unsupported, ValueError),
        ("big.png", texcache.TooManyPixels, ValueError),
        ("../outside.png", texcache.OutsideMediadir, PermissionError),
    ]
    for href, cls, builtin in cases:
        with pytest.raises(cls) as e:
            cache.bitmap(href)
        assert isinstance(e.value, texcache.Error) and isinstance(e.value, builtin)
        assert e.value.href == href and href in str(e.value)
    with pytest.raises(texcache.Corrupt) as e:
        texcache.Cache(mediadir=str(corpus / "png-faults")).bitmap("x_unexpected_eof.png")
    assert "x_unexpected_eof.png" in str(e.value)
    if os.geteuid() != 0:
        locked = tmp_path / "locked.png"
        write_png(locked, picture(4))
        locked.chmod(0)
        with pytest.raises(texcache.PermissionDenied):
            texcache.Cache(mediadir=str(tmp_path)).bitmap("locked.png")
    with pytest.raises(texcache.ConfigError, match="cpu.budgett"):
        texcache.Cache(cpu_budgett=1)
    with pytest.raises(texcache.ConfigError):
        texcache.Cache(corpus / "nonexistent.toml")
    with pytest.raises(texcache.Unsupported, match="x_not_a_video.mp4"):
        texcache.Cache(mediadir=str(corpus / "video/encoded")).video("x_not_a_video.mp4")
    # Holding every frame slot and asking for more is an error, not a wait for ever.
    node = texcache.Cache(mediadir=str(corpus / "video"), video_queue_length=2).video(
        "testsrc2_320x240_60f.y4m"
    )
    held = [node.next_frame(), node.next_frame()]
    with pytest.raises(texcache.VideoError, match="drop one"):
        node.next_frame()
    del held
    gc.collect()
    assert node.next_frame().index == 2
    with pytest.raises(ValueError, match="GPU tier"):
        cache.trim("gpu", 0)
    with pytest.raises(ValueError, match="fit"):
        cache.bitmap("big.png", fit=(0, 10))


def test_prefetch_remove_trim_set_budget_and_fit(tmp_path):
    for i in range(4):
        write_png(tmp_path / f"p{i}.png", picture(i))
    cache = texcache.Cache(mediadir=str(tmp_path), cpu_budget="1 MiB")
    cache.prefetch([f"p{i}.png" for i in range(4)])
    cache.prefetch("p0.png", fit=(16, 16))
    cache.wait_prefetch()
    s = cache.stats()["cpu"]
    assert s["misses"] == 5 and s["entries"] == 5
    assert cache.bitmap("p1.png") and cache.stats()["cpu"]["hits"] == 1
    thumb = cache.bitmap("p0.png", fit=(16, 16))
    assert (thumb.width, thumb.height) == (16, 16)
    assert cache.remove("p0.png")  # every size of it
    # The thumbnail is still held: out of the index, counted until released (§3.5).
    assert cache.stats()["cpu"]["entries"] == 4
    del thumb
    gc.collect()
    assert cache.stats()["cpu"]["entries"] == 3
    assert cache.trim("cpu", 64 * 64 * 4)["used"] == 64 * 64 * 4
    assert cache.set_budget("cpu", "0 B")["used"] == 0
    entries = cache.stats(entries=True)["entries"]
    assert entries == []


def test_video_frames_and_planes(corpus):
    cache = texcache.Cache(mediadir=str(corpus / "video"), video_queue_length=3)
    node = cache.video("testsrc2_320x240_60f.y4m")
    times, planes = [], None
    for frame in node:
        times.append(frame.time)
        if frame.index == 5:
            planes = frame.planes()
            rgb = frame.to_rgb()
        if frame.index == 9:
            break
    y, u, v = planes
    assert (y.shape, u.shape, v.shape, rgb.shape) == ((240, 320), (120, 160), (120, 160), (240, 320, 3))
    assert not y.flags.writeable
    assert times == pytest.approx([i / 30 for i in range(10)], abs=1e-6)
    # The held planes keep their frame: one frame held while the node goes on.
    del frame
    gc.collect()
    assert node.stats()["held_frames"] == 1
    node.seek(1.0)
    assert node.next_frame().time == pytest.approx(1.0, abs=1e-6)
    del planes, y, u, v
    gc.collect()
    node.stop()
    assert node.stats()["cpu_bytes"] == 0


def test_memory_stays_flat_over_50000_acquires(tmp_path):
    # 1024 pictures of 16 KiB: 16 MiB, four times the 4 MiB budget.
    count, budget = 1024, 4 << 20
    for i in range(count):
        write_png(tmp_path / f"p{i}.png", picture(i))
    cache = texcache.Cache(mediadir=str(tmp_path), cpu_budget=budget)
    rng = random.Random(7)
    held = deque(maxlen=4)
    gc.collect()
    base = rss()
    at_10k = peak = 0
    for n in range(1, 50_001):
        held.append(np.asarray(cache.bitmap(f"p{rng.randrange(count)}.png")))
        if n % 1000 == 0:
            now = rss()
            peak = max(peak, now)
            if n == 10_000:
                at_10k = now
    end = rss()
    s = cache.stats()["cpu"]
    assert s["used"] <= budget and s["evictions"] > 30_000, s
    held_bytes = len(held) * 64 * 64 * 4
    assert peak - base <= budget + held_bytes + (32 << 20), (peak - base) >> 20
    assert end - at_10k <= 4 << 20, f"RSS grew {(end - at_10k) >> 10} KiB from 10,000 to 50,000"


def test_dlpack_is_read_only_for_dlpack_1_consumers_and_capsules_free_their_hold(tmp_path):
    write_png(tmp_path / "a.png", picture(5))
    cache = texcache.Cache(mediadir=str(tmp_path))
    bm = cache.bitmap("a.png")
    assert bm.__dlpack_device__() == (1, 0)
    # Capsules nobody consumed still free their handle when collected.
    caps = [bm.__dlpack__(max_version=(1, 0)), bm.__dlpack__()]
    assert bm.refs == 3
    del caps
    gc.collect()
    assert bm.refs == 1
    d = np.from_dlpack(bm)
    assert d.ctypes.data == np.asarray(bm).ctypes.data and not d.flags.writeable
    with pytest.raises(ValueError):
        d[0, 0, 0] = 1
    if tuple(int(x) for x in np.__version__.split(".")[:2]) >= (2, 1):
        copied = np.from_dlpack(bm, copy=True)
        assert copied.flags.writeable and copied.ctypes.data != d.ctypes.data
        assert np.array_equal(copied, d)


def test_torch_reads_the_pixels_when_it_is_installed(tmp_path):
    torch = pytest.importorskip("torch")
    write_png(tmp_path / "a.png", picture(6))
    bm = texcache.Cache(mediadir=str(tmp_path)).bitmap("a.png")
    t = torch.from_dlpack(bm)
    assert t.shape == (64, 64, 4) and t.dtype == torch.uint8
    assert t.numpy().tolist() == picture(6).tolist()


def test_to_rgb_uses_the_streams_matrix_range_and_rotation(corpus):
    enc = corpus / "video" / "encoded"
    cache = texcache.Cache(mediadir=str(enc))
    # BT.709, limited range (the HD clip): the YUV planes through BT.709's matrix.
    node = cache.video("testsrc2_1920x1080_h264.mp4")
    node.play()
    frame = node.next_frame()
    y, u, v = (p.astype(np.float32) for p in frame.planes())
    u = np.repeat(np.repeat(u, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]] - 128
    v = np.repeat(np.repeat(v, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]] - 128
    yy, u, v = (y - 16) * 255 / 219, u * 255 / 224, v * 255 / 224
    want = np.stack(
        [yy + 1.5748 * v, yy - 0.187324 * u - 0.468124 * v, yy + 1.8556 * u], axis=-1
    )
    want = np.clip(np.round(want), 0, 255).astype(np.uint8)
    rgb = frame.to_rgb()
    assert rgb.shape == (1080, 1920, 3)
    assert np.abs(rgb.astype(int) - want).max() <= 1
    # A clip with a display matrix: turned upright (coded 640x360, shown 360x640).
    node = cache.video("testsrc2_640x360_h264_rot90.mp4")
    node.play()
    frame = node.next_frame()
    assert (frame.width, frame.height) == (640, 360)
    assert frame.to_rgb().shape == (640, 360, 3)


def test_names_that_are_not_utf8_bytes_and_paths_load(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.png"  # Latin-1, not UTF-8
    write_png(tmp_path / "plain.png", picture(5))
    os.replace(tmp_path / "plain.png", raw)
    write_png(tmp_path / "also.png", picture(6))
    cache = texcache.Cache(mediadir=str(tmp_path))
    listed = [n for n in os.listdir(tmp_path) if n.startswith("caf")]
    assert listed == ["caf\udce9.png"]  # what os.listdir gives: a surrogate escape
    want = picture(5)
    assert np.array_equal(cache.array(listed[0]), want)
    assert np.array_equal(cache.array(b"caf\xe9.png"), want)
    assert np.array_equal(np.asarray(cache.bitmap(tmp_path / "also.png")), picture(6))
    assert cache.stats()["cpu"]["hits"] == 1  # the str and bytes name one entry
    cache.prefetch([b"caf\xe9.png", tmp_path / "also.png"])
    cache.wait_prefetch()
    assert cache.remove(listed[0])
    with pytest.raises(texcache.NotFound, match="missing"):
        cache.bitmap(b"missing\xff.png")
    with pytest.raises(TypeError, match="href"):
        cache.bitmap(42)


def test_dlpack_refuses_devices_it_cannot_give(tmp_path):
    write_png(tmp_path / "a.png", picture(1))
    b = texcache.Cache(mediadir=str(tmp_path)).bitmap("a.png")
    assert b.__dlpack_device__() == (1, 0)
    b.__dlpack__(dl_device=(1, 0))  # the CPU: fine
    for device in [(2, 0), (1, 1), (13, 0)]:
        with pytest.raises(BufferError, match="CPU"):
            b.__dlpack__(dl_device=device)


def test_a_zero_by_zero_picture_is_corrupt(tmp_path):
    (tmp_path / "empty.ppm").write_bytes(b"P6\n0 0\n255\n")
    with pytest.raises(texcache.Corrupt, match="empty.ppm"):
        texcache.Cache(mediadir=str(tmp_path)).bitmap("empty.ppm")

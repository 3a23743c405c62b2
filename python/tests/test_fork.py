"""Forked and spawned processes (data loaders' workers): after `os.fork`, a cache made in the
parent works in the child as a fresh cache of its own, whatever the parent was doing at the
fork (loading, prefetching, sampling, serving its control socket); the child never touches
the parent's threads, socket or trace. And pools under fork, spawn and forkserver."""

import gc
import hashlib
import multiprocessing as mp
import os
import socket
import stat
import threading

import numpy as np
import pytest

import _workers
import texcache
from conftest import picture, write_png


def run_in_child(body, timeout=60):
    """Forks; the child runs `body()` and leaves with `os._exit` (0 if it returned, 1 if it
    raised, printing why). Returns the child's exit code; fails if it has not ended within
    `timeout` seconds (it is killed then)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        except BaseException:  # noqa: BLE001 - everything is reported, then the child ends
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(status=os.waitpid(pid, 0)[1]))
    waiter.start()
    waiter.join(timeout)
    if waiter.is_alive():
        os.kill(pid, 9)
        waiter.join()
        pytest.fail(f"the forked child was still running after {timeout} s (killed)")
    status = result["status"]
    assert os.WIFEXITED(status), f"the child was killed: status {status}"
    return os.WEXITSTATUS(status)


@pytest.fixture
def pictures(tmp_path):
    for i in range(6):
        write_png(tmp_path / f"p{i}.png", picture(i))
    write_png(tmp_path / "big.png", picture(99, 2500, 2500))
    return tmp_path


def test_a_load_in_flight_at_the_fork_loads_again_in_the_child(pictures):
    cache = texcache.Cache(mediadir=str(pictures), loader_threads=2)
    cache.prefetch("big.png")
    while cache.stats()["cpu"]["misses"] < 1:
        pass  # until a loader thread has started on it
    def child():
        s = cache.stats()["cpu"]
        assert (s["entries"], s["misses"]) == (0, 0), s  # a fresh cache of the child's own
        a = cache.array("big.png")
        assert a.shape == (2500, 2500, 4)
        cache.prefetch(["p0.png", "p1.png"])  # runs on threads of the child's
        cache.wait_prefetch()
        assert cache.stats()["cpu"]["misses"] == 3
    assert run_in_child(child) == 0
    cache.wait_prefetch()
    assert cache.array("big.png").shape == (2500, 2500, 4)
    assert cache.stats()["cpu"]["misses"] == 1


def test_the_parents_arrays_read_and_release_in_the_child(pictures):
    cache = texcache.Cache(mediadir=str(pictures))
    a = cache.array("p0.png")
    b = cache.bitmap("p1.png")
    want = a.copy()
    def child():
        assert np.array_equal(a, want)
        view = np.asarray(b)
        assert view.shape == (64, 64, 4)
        del view
        b.release()
        gc.collect()
        again = cache.array("p0.png")  # loaded again, by the child's cache
        assert np.array_equal(again, want)
    assert run_in_child(child) == 0
    assert np.array_equal(a, want)
    assert cache.stats()["cpu"]["in_use_entries"] == 2


def test_a_child_leaves_the_parents_socket_trace_and_threads_alone(pictures):
    write_png(pictures / "child.png", picture(7))
    sock = pictures / "app.sock"
    trace = pictures / "app.trace"
    holder = [
        texcache.Cache(
            mediadir=str(pictures),
            stats_socket=str(sock),
            stats_trace=str(trace),
            stats_history_interval_ms=5,
            loader_threads=2,
        )
    ]
    holder[0].prefetch([f"p{i}.png" for i in range(6)])
    held = holder[0].array("p0.png")
    def child():
        assert holder[0].array("child.png").shape == (64, 64, 4)
        assert holder[0].stats()["cpu"]["entries"] == 1
        holder.clear()  # the child's last reference: the cache drops here
        gc.collect()
    # Twice: a second child forked after the first.
    assert run_in_child(child) == 0
    assert run_in_child(child) == 0
    cache = holder[0]
    cache.wait_prefetch()
    assert stat.S_ISSOCK(os.stat(sock).st_mode), "the socket file is still the parent's"
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
    assert cache.stats()["cpu"]["misses"] == 6
    del held
    cache.record_trace(str(pictures / "again.trace"))  # ends the first trace, whole
    text = trace.read_text()
    assert "p0.png" in text and "p5.png" in text
    assert "child.png" not in text


def test_a_child_of_a_child_gets_its_own_cache_too(pictures):
    cache = texcache.Cache(mediadir=str(pictures))
    cache.array("p0.png")
    def grandchild():
        assert cache.stats()["cpu"]["entries"] == 0
        assert cache.array("p2.png").shape == (64, 64, 4)
    def child():
        cache.array("p1.png")
        assert cache.stats()["cpu"]["entries"] == 1
        assert run_in_child(grandchild) == 0
        assert cache.stats()["cpu"]["entries"] == 1
    assert run_in_child(child) == 0
    assert cache.stats()["cpu"]["entries"] == 1


def test_a_pending_video_node_from_the_parent_raises_in_the_child(corpus):
    cache = texcache.Cache(mediadir=str(corpus / "video"))
    node = cache.video("testsrc2_320x240_60f.y4m")
    node.play()
    first = node.next_frame()
    def child():
        assert first.index == 0
        with pytest.raises(texcache.VideoError, match="forked"):
            node.next_frame()
        with pytest.raises(texcache.VideoError, match="forked"):
            node.stats()
        assert (node.width, node.height) == (320, 240)
        mine = cache.video("testsrc2_320x240_60f.y4m")
        mine.play()
        assert mine.next_frame().index == 0
    assert run_in_child(child) == 0
    assert node.next_frame().index == 1


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pools_under_every_start_method_read_the_same_pixels(pictures, method):
    hrefs = [f"p{i}.png" for i in range(6)] * 3
    parent = texcache.Cache(mediadir=str(pictures), loader_threads=2)
    parent.prefetch(hrefs)  # threads and loads live while the pool forks its workers
    want = {}
    for h in set(hrefs):
        a = parent.array(h)
        want[h] = (a.shape, hashlib.sha256(a.tobytes()).hexdigest())
    ctx = mp.get_context(method)
    if method == "fork":
        _workers.CACHE = parent  # inherited by the forked workers
        pool = ctx.Pool(3)
    else:
        pool = ctx.Pool(3, initializer=_workers.open_cache, initargs=(str(pictures),))
    with pool:
        got = pool.map(_workers.digest, hrefs, chunksize=2)
    assert got == [want[h] for h in hrefs]
    assert parent.stats()["cpu"]["misses"] == 6

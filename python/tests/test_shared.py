"""The CPU tier shared between processes (§12 of docs/reference.md): one owner, workers under
fork, spawn and forkserver that view its pixels (one decode for all), a client killed while it
holds pictures, an owner that dies under a client."""

import hashlib
import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

import _workers
import texcache
from conftest import picture, write_png

N = 8


@pytest.fixture
def media(tmp_path):
    d = tmp_path / "media"
    d.mkdir()
    for i in range(N):
        write_png(d / f"p{i}.png", picture(i, w=48 + i, h=32))
    return d


def owner(media):
    cache = texcache.Cache(mediadir=str(media), stats_history_interval_ms=0)
    path = cache.share()
    assert cache.shared == path
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    return cache


def eventually(predicate, seconds=1.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.005)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_workers_share_one_decode_of_each_picture(media, method):
    cache = owner(media)
    hrefs = [f"p{i}.png" for i in range(N)] * 4
    with mp.get_context(method).Pool(4, initializer=_workers.keep_shared, initargs=(cache,)) as pool:
        got = pool.map(_workers.shared_digest, hrefs, chunksize=1)
    assert {pid for pid, _, _ in got} - {os.getpid()}, "the work ran in other processes"
    s = cache.stats()
    # Every worker's view came from the owner's tier: one decode per picture in all.
    assert s["cpu"]["misses"] == N
    assert s["cpu"]["hits"] + s["cpu"]["coalesced"] == len(hrefs) - N
    for (_, shape, digest), href in zip(got, hrefs):
        a = cache.array(href)
        assert shape == a.shape
        assert digest == hashlib.sha256(a.tobytes()).hexdigest()
    del a
    eventually(lambda: cache.stats()["shared"]["clients"] == [])
    assert cache.stats()["cpu"]["in_use_entries"] == 0


def test_a_shared_cache_pickles_to_a_client_and_a_plain_one_does_not(media):
    plain = texcache.Cache(mediadir=str(media))
    with pytest.raises(TypeError):
        pickle.dumps(plain)
    cache = owner(media)
    client = pickle.loads(pickle.dumps(cache))
    assert client.shared == cache.shared
    a = client.array("p1.png")
    assert (a == cache.array("p1.png")).all()
    assert not a.flags.writeable
    assert client.stats()["cpu"]["misses"] == 1
    with pytest.raises(texcache.Unsupported):
        client.trim("cpu", 0)


KILLED = """
import sys, texcache
c = texcache.connect(sys.argv[1])
held = [c.bitmap(f"p{i}.png") for i in range(int(sys.argv[2]))]
print("held", flush=True)
sys.stdin.read()
"""


def test_a_client_killed_while_holding_pictures_releases_them_within_a_second(media):
    cache = owner(media)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, cache.shared, str(N)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "held"
    s = cache.stats()
    assert s["cpu"]["in_use_entries"] == N
    [client] = s["shared"]["clients"]
    assert client["pid"] == child.pid and client["held_entries"] == N
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    eventually(lambda: cache.stats()["cpu"]["in_use_entries"] == 0)
    assert cache.stats()["shared"]["clients"] == []


OWNER = """
import sys, texcache
c = texcache.Cache(mediadir=sys.argv[1], stats_history_interval_ms=0)
print(c.share(sys.argv[2]), flush=True)
sys.stdin.read()
"""


def test_when_the_owner_dies_views_stay_and_calls_raise_owner_gone(media, tmp_path):
    path = str(tmp_path / "owner.sock")
    own = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(media), path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert own.stdout.readline().strip() == path
    client = texcache.connect(path)
    a = client.array("p2.png")
    before = a.copy()
    os.kill(own.pid, signal.SIGKILL)
    own.wait()
    assert (a == before).all(), "a view outlives its owner"
    t = time.monotonic()
    with pytest.raises(texcache.OwnerGone) as e:
        client.array("p3.png")
    assert isinstance(e.value, texcache.Error) and isinstance(e.value, ConnectionError)
    with pytest.raises(texcache.OwnerGone):
        client.stats()
    assert time.monotonic() - t < 1.0


def test_connect_to_nothing_is_a_socket_error(tmp_path):
    with pytest.raises(texcache.SocketError):
        texcache.connect(tmp_path / "nobody.sock")

"""What the worker processes of tests/test_fork.py run: a module of its own, so that spawn and
forkserver workers can import it by name."""

import hashlib
import os

import texcache

CACHE = None


def open_cache(mediadir):
    """A pool initializer for spawn and forkserver: each worker's own cache."""
    global CACHE
    CACHE = texcache.Cache(mediadir=mediadir, stats_history_interval_ms=0)


def digest(href):
    """The picture's shape and the SHA-256 of its pixels, read through the worker's cache
    (under fork: the cache the parent made, inherited)."""
    a = CACHE.array(href)
    return a.shape, hashlib.sha256(a.tobytes()).hexdigest()


SHARED = None


def keep_shared(cache):
    """A pool initializer: the shared cache, unpickled in a spawn or forkserver worker (a
    client of its owner), or inherited by a forked one (a client from its first call)."""
    global SHARED
    SHARED = cache


def shared_digest(href):
    """The picture's shape and digest, read from the shared cache, and this process's id."""
    a = SHARED.array(href)
    return os.getpid(), a.shape, hashlib.sha256(a.tobytes()).hexdigest()

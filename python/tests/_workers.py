"""What the worker processes of tests/test_fork.py run: a module of its own, so that spawn and
forkserver workers can import it by name."""

import hashlib

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

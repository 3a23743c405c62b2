"""Prints the stats table of a running texcache application through its control socket.

    python stats_table.py SOCKET [--every SECS]

The socket answers one line (`stats`) with one line of JSON (§9 of docs/reference.md); this is what
`texcache stats --socket SOCKET` does, in a few lines of Python.
"""

import argparse
import json
import socket
import time


def fetch(path, request="stats"):
    """The §6 statistics of the application serving `path`, as a dict."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(request.encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    answer = json.loads(b"".join(chunks))
    if "error" in answer:
        raise RuntimeError(f"{path}: the application says: {answer['error']}")
    return answer


def size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def table(stats):
    """The table `texcache stats` prints, for the CPU tier, the GPU tier and video."""
    head = f"{'tier':<5} {'budget':>11} {'used':>11} {'in use':>11} {'entries':>8} {'hit%':>6} {'hits':>8} {'misses':>8} {'evictions':>9}"
    rows = [head]
    for name in ("cpu", "gpu"):
        t = stats[name]
        n = t["hits"] + t["misses"]
        ratio = 100.0 * t["hits"] / n if n else 0.0
        rows.append(
            f"{name:<5} {size(t['budget']):>11} {size(t['used']):>11} {size(t['in_use']):>11} "
            f"{t['entries']:>8} {ratio:>6.1f} {t['hits']:>8} {t['misses']:>8} {t['evictions']:>9}"
        )
    v = stats["video"]
    rows.append(f"video {v['nodes']} node(s), {size(v['cpu_bytes'])} CPU; process RSS {size(stats['process']['rss'])}")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("socket")
    ap.add_argument("--every", type=float, help="print again every SECS seconds (0.1 or more)")
    args = ap.parse_args()
    while True:
        print(table(fetch(args.socket)), flush=True)
        if args.every is None:
            return
        time.sleep(max(args.every, 0.1))
        print()


if __name__ == "__main__":
    main()

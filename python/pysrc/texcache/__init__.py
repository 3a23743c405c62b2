"""texcache: a bounded, shared cache of decoded pictures and video frames.

>>> import numpy as np, texcache
>>> cache = texcache.Cache(cpu_budget="256 MiB", mediadir="photos")   # doctest: +SKIP
>>> pixels = np.asarray(cache.bitmap("cat.jpg"))                     # doctest: +SKIP

Pictures are decoded once and shared: every array of one href is a read-only view of the same
cached pixels (no copy), and the entry stays in use while any view lives. Unused pictures are
evicted, least recently released first, when the budget is exceeded. See the repository's
docs/reference.md §11 and python/README.md.
"""

from ._texcache import Bitmap, Cache, Frame, Video, connect, decode_file, version

__all__ = [
    "Cache", "Bitmap", "Video", "Frame", "connect", "decode_file", "version",
    "Error", "NotFound", "PermissionDenied", "NotAFile", "ReadError", "Unsupported", "Corrupt",
    "TooManyPixels", "OutsideMediadir", "GpuError", "GpuOutOfMemory", "LoadPanicked",
    "ConfigError", "TraceError", "SocketError", "ThreadError", "VideoError", "OwnerGone",
]


class Error(Exception):
    """Every texcache error. `href` names the picture, file or video (None for a config)."""

    href = None


class NotFound(Error, FileNotFoundError):
    """The file does not exist."""


class PermissionDenied(Error, PermissionError):
    """The file cannot be read for want of permission."""


class NotAFile(Error, OSError):
    """The href names a folder or something else that is not a regular file."""


class ReadError(Error, OSError):
    """Reading the file failed (an I/O error)."""


class Unsupported(Error, ValueError):
    """A format (or a variant of one) that texcache does not decode."""


class Corrupt(Error, ValueError):
    """Damaged data; the message carries the decoder's."""


class TooManyPixels(Error, ValueError):
    """Larger than loader.max_pixels (the message gives the dimensions)."""


class OutsideMediadir(Error, PermissionError):
    """confine = true and the href resolves outside mediadir."""


class GpuError(Error):
    """The GPU refused (not raised by this package, which has no GPU tier)."""


class GpuOutOfMemory(GpuError, MemoryError):
    """The GPU had no memory for a texture."""


class LoadPanicked(Error, RuntimeError):
    """A load panicked inside texcache; the next request loads afresh."""


class ConfigError(Error, ValueError):
    """A bad config file or override (the message names the key)."""


class TraceError(Error, ValueError):
    """A bad trace file (the message names the line)."""


class SocketError(Error, OSError):
    """The control socket failed."""


class ThreadError(Error, RuntimeError):
    """The system refused a thread."""


class VideoError(Error, ValueError):
    """A video could not be opened or decoded."""


class OwnerGone(Error, ConnectionError):
    """The owner of a shared cache has ended; views already made stay readable."""

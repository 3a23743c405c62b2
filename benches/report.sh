#!/usr/bin/env bash
# The decode comparisons of PERFORMANCE.md: `cargo bench --bench miss` (texcache_miss and
# raw_decode, Melem/s = megapixels/s) and `cargo bench --bench fit` (fitted into 768x512), then
# Pillow on the same files and the same fitted job when it is installed.
# TEXCACHE_BENCH_FEATURES= benches/report.sh measures the library without turbojpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
# With `turbojpeg`, as the command line and the Python package build the library (JPEG through
# libjpeg-turbo); without it JPEG goes to zune-jpeg.
features="${TEXCACHE_BENCH_FEATURES-turbojpeg}"
cargo bench --features "$features" --bench miss -- --noplot 2>&1 | grep -E "^miss/|thrpt:"
cargo bench --features "$features" --bench fit -- --noplot 2>&1 | grep -E "^fit/|time:"
if python3 -c "import PIL" 2>/dev/null; then
  python3 benches/pillow_decode.py
else
  echo "Pillow is not installed: pip install pillow, then run this again for its numbers" >&2
fi

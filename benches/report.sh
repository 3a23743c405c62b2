#!/usr/bin/env bash
# The decode comparison of PERFORMANCE.md: `cargo bench --bench miss` (texcache_miss and
# raw_decode, Melem/s = megapixels/s), then Pillow on the same files when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench miss -- --noplot 2>&1 | grep -E "^miss/|thrpt:"
if python3 -c "import PIL" 2>/dev/null; then
  python3 benches/pillow_decode.py
else
  echo "Pillow is not installed: pip install pillow, then run this again for its numbers" >&2
fi

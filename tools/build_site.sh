#!/usr/bin/env bash
# Build the course website into _build/html, offline (see tools/build_site.py). Needs the packages
# of requirements-dev.txt (mystmd) and Node.js 18 or newer.
set -euo pipefail
exec python3 "$(dirname "$0")/build_site.py" "$@"

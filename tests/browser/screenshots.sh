#!/usr/bin/env bash
# Takes the dashboard screenshots of docs/ (docs/img/dashboard-*.png) by
# running the browser tests with BFR_SCREENSHOTS=docs/img. Needs a build
# (BFR_BUILD_DIR, default build/) and dashboard/dist (dashboard/build.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export BFR_BUILD_DIR=${BFR_BUILD_DIR:-$ROOT/build}
export BFR_SCREENSHOTS="$ROOT/docs/img"
bash "$ROOT/dashboard/build.sh"
/usr/bin/python3 "$ROOT/tests/browser/test_dashboard.py"
/usr/bin/python3 "$ROOT/tests/browser/test_dashboard_login.py"
ls -l "$BFR_SCREENSHOTS"/dashboard-*.png

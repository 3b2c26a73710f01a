#!/usr/bin/env bash
# Render an evaluation report (report.html) in headless Chromium and save a screenshot: proof
# that the one self-contained page renders in a real browser (its plots are data: URIs).
#
#   bash bench/report_screenshot.sh warehouse/reports/eval-2026-12-04/report.html docs/report.png
#
# Needs Chromium (Debian: apt-get install chromium). The page must have been written by
# `policyrank evaluate` (or run-daily --train) on at least two dates for the history section.
set -euo pipefail
page=$(realpath "$1")
out=${2:-docs/report.png}
height=${HEIGHT:-4200}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
"$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1100,"$height" --screenshot="$(realpath -m "$out")" "file://$page" 2>/dev/null
file "$out"

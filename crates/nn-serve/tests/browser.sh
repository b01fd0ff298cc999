#!/usr/bin/env bash
# Browser test of nn-serve's page (GET /): installs Debian's chromium when it is
# missing, then runs the ignored test in tests/browser.rs, where headless Chromium
# draws a stroke on the canvas (8×8 digits and 28×28 MNIST-style models) or fills the
# form (a tabular model), and the prediction the page displays must equal the API's
# answer for the input the page sent. Screenshots: target/tmp/nn-serve-browser/*.png
set -euo pipefail
cd "$(dirname "$0")/../../.."
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
chromium --version
cargo test -p nn-serve --test browser -- --ignored --nocapture

#!/usr/bin/env bash
# Browser tests of nn-serve's page (GET /): installs Debian's chromium when it is
# missing, then runs the ignored tests in tests/browser.rs:
# - headless Chromium draws a stroke on the canvas (8×8 digits and 28×28 MNIST-style
#   models) or fills the form (tabular models, with and without column names), and
#   the prediction the page displays must equal the API's answer for what it sent;
# - with NN_DATA_DIR set (the folder holding mnist/), a seed CNN is trained on MNIST
#   (one epoch with the release nn-cli built here, a few seconds), and a 7, a 1 and a 0
#   drawn with real mouse strokes (DevTools Input events) must be read as 7, 1 and 0.
# Screenshots: target/tmp/nn-serve-browser/*.png
set -euo pipefail
cd "$(dirname "$0")/../../.."
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
chromium --version
if [ -n "${NN_DATA_DIR:-}" ] || [ -d ../shared/data ]; then
  # The MNIST case trains with the release binary: the library in a debug test build
  # takes minutes. Built when data is at hand (CI's later `cargo test -- --ignored`
  # with NN_DATA_DIR finds it in target/release too, as long as it is newer than
  # the sources).
  cargo build --release -q -p nn-cli
  export NN_CLI="$PWD/target/release/nn-cli"
fi
cargo test -p nn-serve --test browser -- --ignored --nocapture

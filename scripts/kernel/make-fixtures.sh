#!/bin/sh
# Regenerates the power-cut fixtures in test/kernel/fixtures/ (gzipped images + manifest.json) with
# the real kernel: runs the kernel → r5ctl scenarios with R5CTL_WRITE_FIXTURES=1. Update the md5s in
# test/kernel/fixtures/README.md from the new manifest afterwards.
set -e
cd "$(dirname "$0")/../.."
npm run build
R5CTL_KERNEL=1 R5CTL_WRITE_FIXTURES=1 npx mocha --no-config --timeout 900000 --reporter spec --enable-source-maps \
  dist/test/kernel/kernel-to-r5ctl.test.js || true
ls -l test/kernel/fixtures/*/
cat test/kernel/fixtures/manifest.json

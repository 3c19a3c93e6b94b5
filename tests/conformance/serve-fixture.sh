#!/usr/bin/env bash
# Starts the conformance fixture server in the foreground on 127.0.0.1:PORT (default 3000).
# Usage: tests/conformance/serve-fixture.sh [PORT]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/node_modules/.bin/node" "$root/tests/fixtures/conformance-server.mjs" --port "${1:-3000}"

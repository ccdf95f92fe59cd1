#!/usr/bin/env bash
# `make demo`: a single-node tour in the sqlite3 shell. The replication issue turns this
# into a three-node cluster on 127.0.0.2-4.
set -euo pipefail
lib=${1:-./build/libhdbrepl}
dir=$(mktemp -d /tmp/hdbrepl-demo-XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "== hdbrepl demo: database $dir/demo.db, extension $lib"
sqlite3 "$dir/demo.db" -cmd ".load $lib" < "$(dirname "$0")/tour.sql"
echo "== done"

#!/bin/bash
# Undo examples/lab-up.sh: stop gobgpd and Open vSwitch, delete the namespaces and the lab directory.
BASE=${BASE:-/tmp/sniffroute-lab}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$BASE/gobgpd.pid" ] && kill "$(cat "$BASE/gobgpd.pid")" 2>/dev/null
bash "$HERE/../tests/e2e/ovs-down.sh" "$BASE/ovs"
rm -rf "$BASE"

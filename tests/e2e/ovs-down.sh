#!/bin/bash
# Undo ovs-up.sh (adapted from the test bed's ovs-down.sh): stops only the daemons whose pidfiles are under
# BASE and deletes only the namespaces listed in BASE/netns (veth pairs die with their namespace).
BASE=$1
RUN=$BASE/run
for d in ovs-vswitchd ovsdb-server; do
    pf=$RUN/$d.pid
    [ -f "$pf" ] || continue
    pid=$(cat "$pf")
    ovs-appctl -t "$RUN/$d.$pid.ctl" exit 2>/dev/null || kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
done
if [ -f "$BASE/netns" ]; then
    while read -r ns; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null; done < "$BASE/netns"
fi
rm -rf "$BASE"
true

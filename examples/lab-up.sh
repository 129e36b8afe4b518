#!/bin/bash
# A switch, a BGP peer and sniffroute on one Linux machine, all in network namespaces (needs root, Open vSwitch,
# gobgpd, ethtool). Undo with examples/lab-down.sh.
#
#   sr-sw    Open vSwitch, userspace datapath, bridge sr-br0 (OpenFlow 1.0 + 1.3), controller tcp:10.254.0.2:6653
#   sr-ctl   where `sniffroute run` goes: its TAP sr-tap1 carries the router address 10.88.1.254/24
#   sr-peer  gobgpd, AS 64501, 10.88.1.1/24 on switch port 1, announcing 203.0.113.0/24 and 198.51.100.0/25
#
# Then, as the script prints at the end:
#   sudo ip netns exec sr-ctl .venv/bin/sniffroute run --config /tmp/sniffroute-lab/sniffroute.toml
#   .venv/bin/sniffroute rib --db /tmp/sniffroute-lab/rib.sqlite        (in another shell)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${BASE:-/tmp/sniffroute-lab}
SWNS=sr-sw CTLNS=sr-ctl PEERNS=sr-peer BR=sr-br0
ROUTER_MAC=02:00:5e:10:00:01 ROUTER_V4=10.88.1.254 PEER_V4=10.88.1.1
OFFLOADS=(tx off rx off tso off gso off gro off)   # TCP through the userspace datapath needs them off

[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, Open vSwitch)" >&2; exit 1; }
for tool in ovs-vswitchd ovsdb-server gobgpd gobgp ethtool; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install openvswitch-switch gobgpd ethtool" >&2; exit 1; }
done
[ ! -e "$BASE" ] || { echo "$BASE exists: run examples/lab-down.sh first" >&2; exit 1; }
mkdir -p "$BASE"

SWNS=$SWNS CTLNS=$CTLNS BR=$BR OFPORT=6653 bash "$HERE/../tests/e2e/ovs-up.sh" "$BASE/ovs" >/dev/null

# the peer on switch port 1
ip netns add "$PEERNS" && echo "$PEERNS" >> "$BASE/ovs/netns"
ip -n "$PEERNS" link set lo up
ip link add sr-peer0 netns "$PEERNS" type veth peer name sr-p1 netns "$SWNS"
ip -n "$PEERNS" link set sr-peer0 address 02:00:5e:10:01:01
ip -n "$PEERNS" addr add "$PEER_V4/24" dev sr-peer0
ip netns exec "$PEERNS" ethtool -K sr-peer0 "${OFFLOADS[@]}" >/dev/null 2>&1 || true
ip netns exec "$SWNS" ethtool -K sr-p1 "${OFFLOADS[@]}" >/dev/null 2>&1 || true
ip -n "$PEERNS" link set sr-peer0 up
ip -n "$SWNS" link set sr-p1 up
OVS_RUNDIR=$BASE/ovs/run ovs-vsctl --db="unix:$BASE/ovs/run/db.sock" add-port "$BR" sr-p1 \
    -- set interface sr-p1 ofport_request=1

cat > "$BASE/gobgpd.toml" <<CONF
[global.config]
  as = 64501
  router-id = "$PEER_V4"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "$ROUTER_V4"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 5
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
CONF
ip netns exec "$PEERNS" gobgpd -f "$BASE/gobgpd.toml" -p --api-hosts=127.0.0.1:50051 --pprof-disable \
    > "$BASE/gobgpd.log" 2>&1 &
echo $! > "$BASE/gobgpd.pid"
for _ in $(seq 50); do ip netns exec "$PEERNS" gobgp -p 50051 global >/dev/null 2>&1 && break; sleep 0.1; done
for prefix in 203.0.113.0/24 198.51.100.0/25; do
    ip netns exec "$PEERNS" gobgp -p 50051 global rib -a ipv4 add "$prefix" origin igp nexthop "$PEER_V4" \
        aspath "4200000100" community 64501:100
done

cat > "$BASE/sniffroute.toml" <<CONF
router_mac = "$ROUTER_MAC"
store = "$BASE/rib.sqlite"
save_interval = 1.0

[openflow]
listen = "10.254.0.2"
port = 6653

[[interfaces]]
name = "sr-tap1"
port = 1
addresses = ["$ROUTER_V4/24"]

[[peers]]
address = "$PEER_V4"
peer_as = 64501
local_as = 64512
router_id = "$ROUTER_V4"
hold_time = 9
CONF

cat <<DONE
Lab up in $BASE. Start the controller (it connects the switch and holds the BGP session through it):
  sudo ip netns exec $CTLNS .venv/bin/sniffroute run --config $BASE/sniffroute.toml
Then, in another shell:
  .venv/bin/sniffroute peers --db $BASE/rib.sqlite
  .venv/bin/sniffroute rib --db $BASE/rib.sqlite
  sudo ip netns exec $PEERNS gobgp -p 50051 neighbor            # the peer's own view: Establ
  sudo ip netns exec $PEERNS ping -c 3 $ROUTER_V4               # the router address, through the tunnel
Tear down with: sudo examples/lab-down.sh
DONE

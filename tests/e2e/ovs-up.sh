#!/bin/bash
# A private Open vSwitch for the end-to-end tests (adapted from the test bed's ovs-up.sh): no systemd, no
# openvswitch kernel module (userspace "netdev" datapath), its own run/db/log dirs, inside namespace $SWNS.
# The controller runs in another namespace, $CTLNS, joined to $SWNS by a veth pair that carries only OpenFlow:
# the bridge's port veths live in $SWNS, and a TAP in the same namespace would let that kernel answer for the
# router address without the tunnel (test bed pitfall 7).  Needs root.  ~0.5 s.
#
#   ovs-up.sh BASE_DIR       (ovs-down.sh BASE_DIR undoes it)
#   env SWNS=st-sw CTLNS=st-ctl BR=st-br0 OFPORT=6653
# Afterwards: OVS_RUNDIR=BASE/run ovs-vsctl / ovs-ofctl / ovs-appctl -t ovs-vswitchd find this instance.
set -euo pipefail
BASE=$1
SWNS=${SWNS:-st-sw}
CTLNS=${CTLNS:-st-ctl}
BR=${BR:-st-br0}
OFPORT=${OFPORT:-6653}
SW_OF_ADDR=10.254.0.1   # OpenFlow link, inside namespaces made here only
CTL_OF_ADDR=10.254.0.2
export OVS_RUNDIR=$BASE/run OVS_DBDIR=$BASE/db OVS_LOGDIR=$BASE/log
mkdir -p "$OVS_RUNDIR" "$OVS_DBDIR" "$OVS_LOGDIR"
: > "$BASE/netns"                       # what ovs-down.sh may delete
DB=unix:$OVS_RUNDIR/db.sock
VSCTL="ovs-vsctl --db=$DB --timeout=10"

mkns() { ip netns add "$1"; echo "$1" >> "$BASE/netns"; ip -n "$1" link set lo up; }

mkns "$SWNS"
mkns "$CTLNS"
IN="ip netns exec $SWNS"
# nothing in the switch namespace needs IPv6: no MLD or router solicitations from the port veths
$IN sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

# OpenFlow link: switch namespace <-> controller namespace
ip -n "$SWNS" link add st-of-sw type veth peer name st-of-ctl netns "$CTLNS"
ip -n "$SWNS" addr add $SW_OF_ADDR/30 dev st-of-sw
ip -n "$CTLNS" addr add $CTL_OF_ADDR/30 dev st-of-ctl
ip -n "$SWNS" link set st-of-sw up
ip -n "$CTLNS" link set st-of-ctl up

# 1. database + ovsdb-server
ovsdb-tool create "$OVS_DBDIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
$IN ovsdb-server "$OVS_DBDIR/conf.db" --remote=punix:"$OVS_RUNDIR/db.sock" \
    --pidfile --detach --log-file -vconsole:off
$VSCTL --no-wait init

# 2. ovs-vswitchd ("Generic Netlink family 'ovs_datapath' does not exist" in its log is expected)
$IN ovs-vswitchd "$DB" --pidfile --detach --log-file -vconsole:off

# 3. bridge: userspace datapath, OpenFlow only (secure: no learning-switch fallback), controller out of band
$VSCTL -- add-br "$BR" \
       -- set bridge "$BR" datapath_type=netdev fail_mode=secure \
              protocols=OpenFlow10,OpenFlow13 \
              other_config:datapath-id=0000000000000001 \
       -- set-controller "$BR" "tcp:$CTL_OF_ADDR:$OFPORT" \
       -- set controller "$BR" connection-mode=out-of-band max_backoff=1000
# ovs-vsctl exits 0 even when vswitchd failed to create the bridge: check the netdev
$IN ip link show "$BR" >/dev/null 2>&1 || { grep -E 'ERR|WARN' "$OVS_LOGDIR/ovs-vswitchd.log"; exit 1; }
$IN ip link set "$BR" up
echo "OVS_RUNDIR=$OVS_RUNDIR"

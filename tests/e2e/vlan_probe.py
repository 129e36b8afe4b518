"""Send one 802.1Q-tagged ICMP echo request out of an interface and report the reply: its VLAN, IP length and
whether the payload came back intact. Run inside the router's namespace (the kernel there has no 8021q module, so
scapy speaks VLAN for it). Prints one JSON object.

    python -m tests.e2e.vlan_probe IFACE VLAN SRC_MAC DST_MAC SRC_IP DST_IP PAYLOAD_BYTES
"""

from __future__ import annotations

import json
import sys

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.sendrecv import srp1

REPLY_TIMEOUT_SECONDS = 3


def main(argv: list[str]) -> int:
    iface, vlan, src_mac, dst_mac, src_ip, dst_ip, size = argv
    payload = bytes(i & 0xFF for i in range(int(size)))
    request = Ether(src=src_mac, dst=dst_mac) / Dot1Q(vlan=int(vlan)) / IP(src=src_ip, dst=dst_ip, flags="DF")
    request = request / ICMP(id=0x5354, seq=1) / Raw(payload)
    reply = srp1(request, iface=iface, timeout=REPLY_TIMEOUT_SECONDS, verbose=False)
    if reply is None:
        print(json.dumps({"reply": False}))
        return 1
    print(
        json.dumps(
            {
                "reply": True,
                "frame_bytes": len(bytes(reply)),
                "vlan": reply[Dot1Q].vlan if Dot1Q in reply else None,
                "ip_length": reply[IP].len,
                "icmp_type": reply[ICMP].type,
                "payload_intact": bytes(reply[ICMP].payload) == payload,
                "source_mac": reply[Ether].src,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

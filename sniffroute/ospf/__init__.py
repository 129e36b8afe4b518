"""OSPF in the sniff pipeline: `lsdb` (the link state database fed with sniffed packets) and `spf` (routes).

Both are pure. A pipeline hands every IP datagram of protocol 89 to `Lsdb.feed_payload(payload, now, src=...,
dst=..., link=...)`, reads the returned `LsdbChange`s and, when there were some, runs
`spf.compute_routes(inputs.areas, inputs.as_scope, root)` with `inputs = lsdb.spf_input(version)`.
"""

"""OSPF wire format: OSPFv2 (RFC 2328) and OSPFv3 (RFC 5340) packets and LSAs, decoded into immutable records.

Modules: `lsa` (LSA records and numbers: the API of the LSDB and SPF), `lsa_codec` (LSA header and body codecs,
v2 and v3), `opaque` (opaque LSA TLVs), `packet` (the five packet types, both versions), `auth` (OSPFv2
authentication, OSPFv3 authentication trailer), `checksum` (Fletcher and Internet checksums).
"""

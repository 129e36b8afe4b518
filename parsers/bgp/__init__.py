"""BGP wire format (RFC 4271 and extensions): framing, OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH.

Modules: `constants` (numbers), `context` (SessionContext from the OPENs), `messages` (framing, UPDATE fields),
`open`, `notification`, `route_refresh`, `attributes` (path attributes, RFC 7606), `nlri` (prefixes),
`update` (an UPDATE's routes under a session context).
"""

"""mud_ryu: a Manufacturer Usage Description (RFC 8520) enforcer for OpenFlow 1.3 switches.

Kept import-free on purpose: a ``.pth`` file imports ``mud_ryu._eventlet_shim`` at every
interpreter start, which imports this package first.
"""

__version__ = "0.1.0"

"""How every SQLite store opens (private file, WAL, FULL sync, integrity check, versioned schema and
migrations, IMMEDIATE writes) and the (key, value, expiry) store saved as a diff.

May import: ``errors`` only.
"""

"""A MUD file from bytes to a validated model: strict JSON, the YANG check (the shipped modules in ``yang/``),
the semantic rules YANG cannot express, the model, its builder and the pre-RFC dialect upgrade.

May import: ``mud_ryu.errors`` only. No store, no network, no clock.
"""

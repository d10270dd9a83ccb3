"""A validated MUD file plus the network's context -> neutral flow records: the declared pipeline (tables,
bands, cookies), the flow-rule records, ACE matching, the context, the profile compiler and the bootstrap, device
and edge flows.

May import: ``mudfile``, ``dns`` (its name rules), ``errors``. No store, no network, no clock.
"""

"""DNS names in MUD files: the DNS frame parser, the name -> addresses binding table with its queries and types,
the store that keeps bindings across restarts, and proactive resolution through the configured resolvers.

May import: ``discovery`` (frame demux), ``storage``, ``errors``.
"""

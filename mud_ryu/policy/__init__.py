"""The MUD URL update policy (draft-ietf-iotops-mud-acceptable-urls): the URL rule, the table-driven state
machine and its effects, its types, the durable trust store and the gate the enforcer asks.

May import: ``fetch`` (URL gate, signer), ``storage``, ``errors``.
"""

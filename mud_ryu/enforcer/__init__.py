"""The core of the app: switch, port, announcement, resolution and DNS events in; flow updates, resolve
requests, packet-outs and alerts out. Its state, the device store, my-controller entries, operator actions and
rate limits; the start-up migration of legacy signer pins.

May import every package below it (not ``api``, ``edge`` or the app); never the controller framework.
"""

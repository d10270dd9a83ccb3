"""The core of the app: switch, port, announcement, resolution and DNS events in; flow updates, resolve
requests, packet-outs and alerts out. Its state, the device store, my-controller entries, operator actions and
rate limits.

May import every package above except ``api``; never the controller framework.
"""

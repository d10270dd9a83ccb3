"""A MUD URL -> a verified file: the URL gate, the SSRF guard, the fetcher and its guards, the detached CMS
signature and who signed it, the cache, the refresh policy, the manager, and the resolver worker with its wire
protocol, its controller-side client and the bounds on resolutions in flight.

May import: ``mudfile``, ``dns`` (the worker's resolver), ``storage``, ``errors``. The only package that
opens sockets for MUD.
"""

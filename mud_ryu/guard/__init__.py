"""What a device on the LAN cannot do: port roles and trusted-port guards, where floods go, the IP source guard
and its address bindings, the DHCP leases seen on trusted ports and the store that keeps them.

May import: ``compiler``, ``discovery``, ``storage``, ``settings``, ``errors``.
"""

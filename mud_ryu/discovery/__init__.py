"""Frame bytes -> MUD URL announcements: the Ethernet/VLAN/IP/UDP demultiplexer and the DHCPv4 (option 161),
DHCPv6 (option 112) and LLDP (OUI 00-00-5E subtype 1) scanners. Total and bounded: they never raise.

May import: ``mud_ryu.errors``. No store, no network, no clock.
"""

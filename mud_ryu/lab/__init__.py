"""Lab tooling: sandboxed Open vSwitch (and later Mininet) for cross-checks, demos and benchmarks.

Nothing here is used by the controller itself. Everything that starts OVS runs inside a
:mod:`mud_ryu.lab.sandbox` (fresh net/pid/mount namespaces), so it never touches the host.
"""

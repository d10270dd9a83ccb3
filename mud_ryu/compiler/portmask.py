"""Port ranges as value/mask matches.

OpenFlow 1.3 has no range match, but OVS accepts masked ``tcp_*``/``udp_*`` ports, so an
inclusive range becomes the minimal set of aligned power-of-two blocks (the classic prefix
decomposition): at most 2*16-2 blocks for a 16-bit range.
"""

from __future__ import annotations

from mud_ryu.mudfile.model import PORT_MAX, PortMatch

PORT_BITS = 16
FULL_MASK = PORT_MAX

PortValue = int | tuple[int, int]


def range_to_masks(lower: int, upper: int, bits: int = PORT_BITS) -> tuple[tuple[int, int], ...]:
    """Disjoint ``(value, mask)`` blocks that together cover exactly ``lower..upper``."""
    full = (1 << bits) - 1
    if not 0 <= lower <= upper <= full:
        raise ValueError(f"bad port range {lower}..{upper}")
    out: list[tuple[int, int]] = []
    lo = lower
    while lo <= upper:
        size = (lo & -lo) if lo else (1 << bits)  # largest block aligned at lo
        while size > upper - lo + 1:
            size >>= 1
        out.append((lo, full & ~(size - 1)))
        lo += size
    return tuple(out)


def port_match_values(pm: PortMatch | None) -> tuple[PortValue | None, ...]:
    """The match values for one port leaf: ``(None,)`` is "any port" (no field), an ``int`` is
    an exact port, a tuple is a masked block. An empty tuple means the leaf matches no port
    (e.g. ``lt 0``): the ACE then compiles to nothing."""
    if pm is None:
        return (None,)
    out: list[PortValue | None] = []
    for lower, upper in pm.ranges():
        for value, mask in range_to_masks(lower, upper):
            if mask == FULL_MASK:
                out.append(value)
            elif mask == 0:
                out.append(None)
            else:
                out.append((value, mask))
    return tuple(out)

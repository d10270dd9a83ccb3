"""DNS over UDP: one raw Ethernet frame (a packet-in's data) -> the query or answer it carries, or why not.

The enforcer copies the DNS traffic of MUD devices to the controller so that the address sets of
``ietf-acldns:dst-dnsname`` ACEs follow what the site resolver tells the devices (THREATS.md row 16,
draft-ietf-opsawg-mud-iot-dns-considerations section 3: use the same resolver as the device). The
answers come through untrusted links, so :func:`scan_dns` is total: for any bytes it returns exactly one of

* :class:`DnsQuery` -- a well-formed standard query (QR=0) to port 53;
* :class:`DnsAnswer` -- a well-formed response (QR=1) from port 53, its CNAME chain resolved from the
  question name to the final A/AAAA records, each address with the chain's minimum TTL;
* :class:`MalformedDns` -- a frame that claims to be DNS but breaks a rule, with a stable reason from :data:`REASONS`;
* :class:`NotDns` -- anything else, with a kind from :data:`NOT_DNS_KINDS` for counters.

Whether an answer may be believed (from a configured resolver, matching an outstanding query) is
not decided here: that is :mod:`mud_ryu.dns.bind`'s job. This module only guarantees that what it
reports is exactly what the message says, with every name ASCII LDH(+underscore), lower-case,
without the trailing dot.

Decisions:

* UDP only. DNS over TCP (a truncated answer's retry, zone transfers) and encrypted DNS (DoT, DoH,
  DoQ) are out of scope: a TC=1 answer is refused (``dns-tc``: it may be a partial RRset), and the
  caller's proactive resolution (``DnsBindings.seed``) covers names whose answers do not fit.
* Only the answer section is read. Authority and additional records (glue) are never trusted: they
  are the classic cache-poisoning vector, and a stub resolver does not bind them either.
* Addresses are taken only for the last name of the CNAME chain that starts at the question name;
  A/AAAA records owned by other names are counted in ``DnsAnswer.other_records`` and dropped.
* Compression pointers must point strictly below the start of the name segment being read (the
  only way a pointer loop can form is forward or into itself), at most ``MAX_POINTER_HOPS`` hops.
* IP fragments are never reassembled: a first fragment to/from port 53 is ``ip-fragment``, later
  fragments are ``NotDns("ip-fragment-tail")``. UDP checksums are not verified (checksum offload,
  see :mod:`mud_ryu.discovery.framedemux`, which reads every header below DNS); the IPv4 header checksum is.
* Bounded: at most ``MAX_ANSWERS`` answer records, ``MAX_CNAME_DEPTH`` CNAME hops, names of at most
  255 wire octets; work is linear in the frame with every loop capped.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from mud_ryu.discovery.framedemux import FRAME_REASONS as FRAME_REASONS  # re-exported: DNS reasons include these
from mud_ryu.discovery.framedemux import LinkFault, NotUdp, format_mac, ip_addresses, ipv4_text, read_link, read_udp

DNS_PORT = 53
DNS_HEADER = 12
CLASS_IN = 1
TYPE_A, TYPE_CNAME, TYPE_AAAA = 1, 5, 28
MAX_ANSWERS = 64  # real answers hold a few CNAMEs and < 20 addresses; also bounds the work per frame
MAX_POINTER_HOPS = 16
MAX_CNAME_DEPTH = 8  # CNAME hops from the question name (CDNs use 2-4)
MAX_NAME_WIRE = 255  # RFC 1035 s2.3.4, length octets and root label included
MAX_LABEL = 63

# Octets allowed in a label: letters, digits, hyphen (RFC 952/1123) and underscore (service labels,
# some CDN names). Everything else -- dots inside a label, '*', spaces, non-ASCII -- is refused.
_LABEL_OCTETS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

MESSAGE_REASONS: frozenset[str] = frozenset(
    {
        "dns-port-mismatch",  # a query not to port 53, or a response not from port 53
        "dns-truncated",  # the message ends before what its counts and lengths announce
        "dns-tc",  # TC=1: possibly a partial answer
        "dns-qdcount",  # not exactly one question
        "dns-too-many-answers",
        "dns-label-type",  # extended (0x40) or reserved (0x80) label type
        "dns-label-chars",
        "dns-name-too-long",
        "dns-pointer-bad",  # a compression pointer into the header
        "dns-pointer-loop",  # a pointer not strictly below the segment being read
        "dns-pointer-limit",
        "dns-rr-class",  # an answer record of another class than IN
        "dns-rdata-length",  # A not 4 octets, AAAA not 16, CNAME target not filling its RDATA
        "dns-cname-conflict",  # two CNAME targets for one owner, or a CNAME owner with addresses
        "dns-cname-loop",
        "dns-cname-depth",
    }
)
# Every reason a MalformedDns can carry (logs and metrics key on these strings); FRAME_REASONS, shared
# with discovery, come from framedemux.
REASONS: frozenset[str] = FRAME_REASONS | MESSAGE_REASONS

NOT_DNS_KINDS: frozenset[str] = frozenset(
    {"ethertype", "ip-protocol", "udp-port", "ip-fragment-tail", "dns-opcode", "dns-class"}
)


@dataclass(frozen=True, slots=True)
class DnsQuery:
    """A standard query from a client (Ethernet/IP source) to a resolver (IP destination)."""

    client_mac: str
    client_ip: str
    client_port: int
    resolver_ip: str
    vlan: int | None
    txid: int
    qname: str
    qtype: int


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """One address of the chain's final name; ``ttl`` is the minimum TTL over the chain and the record."""

    address: str
    ttl: int


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """A response from a resolver (IP source) to a client (Ethernet/IP destination).

    ``chain`` is the question name followed by each CNAME target in order; its last name owns
    ``addresses`` (sorted, de-duplicated keeping the lower TTL). ``other_records`` counts the A/AAAA
    records of names off the chain, which are ignored.
    """

    client_mac: str
    client_ip: str
    client_port: int
    resolver_ip: str
    vlan: int | None
    txid: int
    rcode: int
    qname: str
    qtype: int
    chain: tuple[str, ...]
    addresses: tuple[AddressRecord, ...]
    other_records: int = 0


@dataclass(frozen=True, slots=True)
class MalformedDns:
    """DNS traffic breaking a rule; ``src_mac`` is None only when the frame is too short to hold one."""

    reason: str
    src_mac: str | None = None
    vlan: int | None = None


@dataclass(frozen=True, slots=True)
class NotDns:
    """Not DNS over UDP, or DNS this module does not read; ``kind`` comes from NOT_DNS_KINDS."""

    kind: str


DnsScan = DnsQuery | DnsAnswer | MalformedDns | NotDns


def scan_dns(frame: bytes | bytearray | memoryview) -> DnsScan:
    """Classify one raw Ethernet frame. Never raises; see the module docstring for the four outcomes."""
    link = read_link(frame)
    if isinstance(link, LinkFault):
        return MalformedDns(link.reason, link.src, link.vlan)
    d, src, vlan, ethertype, off, bad_source = link
    udp = read_udp(d, ethertype, off)
    if isinstance(udp, NotUdp):
        return NotDns(udp.kind)
    if isinstance(udp, str):
        return MalformedDns(udp, src, vlan)
    sport, dport, start, end, version, ip, fault = udp
    if sport != DNS_PORT and dport != DNS_PORT:
        return NotDns("udp-port")
    if fault is not None:  # a large answer in fragments: refused, never reassembled; or udp-length
        return MalformedDns(fault, src, vlan)
    if bad_source:  # a group or all-zero source is nobody's client or resolver
        return MalformedDns("eth-bad-source", src, vlan)
    result = _message(d, start, end)
    if isinstance(result, NotDns):
        return result
    if isinstance(result, str):
        return MalformedDns(result, src, vlan)
    src_ip, dst_ip = ip_addresses(d, version, ip)
    if isinstance(result, _Question):
        if dport != DNS_PORT:
            return MalformedDns("dns-port-mismatch", src, vlan)
        return DnsQuery(src, src_ip, sport, dst_ip, vlan, result.txid, result.qname, result.qtype)
    if sport != DNS_PORT:
        return MalformedDns("dns-port-mismatch", src, vlan)
    q = result.question
    return DnsAnswer(
        format_mac(d[0:6]), dst_ip, dport, src_ip, vlan, q.txid, result.rcode, q.qname, q.qtype,
        result.chain, result.addresses, result.other_records,
    )  # fmt: skip


# ---- DNS message --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Question:
    txid: int
    qname: str
    qtype: int


@dataclass(frozen=True, slots=True)
class _Response:
    question: _Question
    rcode: int
    chain: tuple[str, ...]
    addresses: tuple[AddressRecord, ...]
    other_records: int


_NameCache = dict[int, tuple[str, int, int]]  # offset -> (name from there, its wire octets, pointer hops)


def read_name(d: bytes, msg: int, end: int, pos: int, cache: _NameCache | None = None) -> tuple[str, int] | str:
    """The name at ``d[pos:]`` of the message ``d[msg:end]`` and the offset just after it, or a reason.

    Lower-case, labels joined by dots, no trailing dot (the root is ``""``). Each pointer must target
    an offset strictly below the start of the segment being read, so the segments strictly descend
    and no loop can form; the hop count is capped as well. ``cache`` (one per message, same ``end``)
    remembers every suffix decoded so far: answers point at the question name again and again, and
    what follows a pointer depends only on its target.
    """
    labels: list[str] = []
    starts: list[tuple[int, int, int, int]] = []  # (offset, label index, wire before, hops before)
    wire, hops, resume, floor = 1, 0, -1, pos
    while True:
        if pos >= end:
            return "dns-truncated"
        length = d[pos]
        if length == 0:
            break
        if length >= 0xC0:
            if pos + 1 >= end:
                return "dns-truncated"
            target = msg + (((length & 0x3F) << 8) | d[pos + 1])
            if target < msg + DNS_HEADER:
                return "dns-pointer-bad"
            if target >= floor:
                return "dns-pointer-loop"
            hops += 1
            if hops > MAX_POINTER_HOPS:
                return "dns-pointer-limit"
            if resume < 0:
                resume = pos + 2
            pos = floor = target
            known = None if cache is None else cache.get(target)
            if known is not None:
                if hops + known[2] > MAX_POINTER_HOPS:
                    return "dns-pointer-limit"
                if wire + known[1] - 1 > MAX_NAME_WIRE:
                    return "dns-name-too-long"
                labels.append(known[0])
                wire, hops = wire + known[1] - 1, hops + known[2]
                break
            continue
        if length > MAX_LABEL:
            return "dns-label-type"
        if wire + length + 1 > MAX_NAME_WIRE:
            return "dns-name-too-long"
        if pos + 1 + length > end:
            return "dns-truncated"
        raw = d[pos + 1 : pos + 1 + length]
        if raw.translate(None, _LABEL_OCTETS):
            return "dns-label-chars"
        if cache is not None:
            starts.append((pos, len(labels), wire, hops))
        labels.append(raw.decode("ascii").lower())
        wire += length + 1
        pos += 1 + length
    if cache is not None:
        for offset, index, wire_before, hops_before in starts:
            if offset not in cache:
                cache[offset] = (".".join(labels[index:]), wire - wire_before + 1, hops - hops_before)
    return ".".join(labels), (pos + 1 if resume < 0 else resume)


def _message(d: bytes, msg: int, end: int) -> _Question | _Response | NotDns | str:
    if end - msg < DNS_HEADER:
        return "dns-truncated"
    txid, flags, qdcount, ancount = struct.unpack_from("!4H", d, msg)
    if (flags >> 11) & 0xF:  # NOTIFY, UPDATE, ...: not a lookup
        return NotDns("dns-opcode")
    if qdcount != 1:
        return "dns-qdcount"
    cache: _NameCache = {}
    name = read_name(d, msg, end, msg + DNS_HEADER, cache)
    if isinstance(name, str):
        return name
    qname, pos = name
    if pos + 4 > end:
        return "dns-truncated"
    qtype, qclass = struct.unpack_from("!HH", d, pos)
    if qclass != CLASS_IN:
        return NotDns("dns-class")
    question = _Question(txid, qname, qtype)
    if not flags & 0x8000:
        return question
    if flags & 0x0200:
        return "dns-tc"
    if ancount > MAX_ANSWERS:
        return "dns-too-many-answers"
    return _answers(d, msg, end, pos + 4, ancount, question, flags & 0xF, cache)


def _answers(
    d: bytes, msg: int, end: int, pos: int, count: int, q: _Question, rcode: int, cache: _NameCache
) -> _Response | str:
    cnames: dict[str, tuple[str, int]] = {}
    addresses: dict[str, dict[str, int]] = {}
    for _ in range(count):
        name = read_name(d, msg, end, pos, cache)
        if isinstance(name, str):
            return name
        owner, pos = name
        if pos + 10 > end:
            return "dns-truncated"
        rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", d, pos)
        rdata, pos = pos + 10, pos + 10 + rdlength
        if pos > end:
            return "dns-truncated"
        if rclass != CLASS_IN:
            return "dns-rr-class"
        if ttl & 0x80000000:  # RFC 2181 s8: a TTL with the top bit set is read as zero
            ttl = 0
        if rtype in (TYPE_A, TYPE_AAAA):
            if rdlength != (4 if rtype == TYPE_A else 16):
                return "dns-rdata-length"
            raw = d[rdata:pos]
            addr = ipv4_text(raw) if rtype == TYPE_A else str(ipaddress.IPv6Address(raw))
            owned = addresses.setdefault(owner, {})
            owned[addr] = min(ttl, owned.get(addr, ttl))
        elif rtype == TYPE_CNAME:
            target = read_name(d, msg, pos, rdata)  # bounded by its RDATA: no cache (shared with other ends)
            if isinstance(target, str):
                return "dns-rdata-length" if target == "dns-truncated" else target
            if target[1] != pos:
                return "dns-rdata-length"
            previous = cnames.get(owner)
            if previous is not None and previous[0] != target[0]:
                return "dns-cname-conflict"
            cnames[owner] = (target[0], ttl if previous is None else min(ttl, previous[1]))
        # any other type (RRSIG, DNAME, HTTPS, ...) is skipped by its length
    if cnames.keys() & addresses.keys():
        return "dns-cname-conflict"
    chain, chain_ttl = [q.qname], 0xFFFFFFFF
    while chain[-1] in cnames:
        if len(chain) > MAX_CNAME_DEPTH:
            return "dns-cname-depth"
        target, ttl = cnames[chain[-1]]
        if target in chain:
            return "dns-cname-loop"
        chain.append(target)
        chain_ttl = min(chain_ttl, ttl)
    final = addresses.pop(chain[-1], {})
    records = tuple(AddressRecord(a, min(t, chain_ttl)) for a, t in sorted(final.items()))  # sorted by text
    other = sum(len(v) for v in addresses.values())
    return _Response(q, rcode, tuple(chain), records, other)

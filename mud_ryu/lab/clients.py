"""Command lines and configuration files of the real programs the lab runs in its hosts.

The MUD URL reaches the wire through the programs real devices use: busybox ``udhcpc -x 161:``,
isc ``dhclient`` (``send mud-url``), ``dhclient -6`` (``send dhcp6.mud-url``, option 112) and
``lldpd`` (custom TLV OUI 00-00-5E subtype 1). ``dnsmasq`` is the DHCPv4/DHCPv6 server.

Every program gets private files under the lab's work directory (config, lease, pid, script,
control socket) and never its system defaults: the distribution's DHCP client scripts rewrite
``/etc/resolv.conf`` (shared with the host even inside the sandbox), so each client runs a tiny
script of ours that only sets the address on its interface and records the lease in a file
(which is how the runner sees a lease arrive). Pure functions: they build argv lists and texts;
:mod:`mud_ryu.lab.homelab` starts the processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mud_ryu.lab import labhosts
from mud_ryu.lab.labhosts import Client, LabHost

DHCP_RANGE = ("10.0.0.100", "10.0.0.199")
DHCP6_RANGE = ("fd00:10::100", "fd00:10::1ff")
LEASE_TIME = "1h"


@dataclass(frozen=True, slots=True)
class ClientFiles:
    """Per-host files of its client (all under ``<workdir>/clients/<host>/``)."""

    dir: Path
    config: Path
    script: Path
    lease: Path  # written by our script: the address leased ("" after a release)
    leases_db: Path  # the client's own lease database (dhclient)
    pid: Path
    socket: Path  # lldpd control socket
    log: Path

    @classmethod
    def for_host(cls, workdir: Path, name: str) -> ClientFiles:
        d = workdir / "clients" / name
        return cls(d, d / "client.conf", d / "event.sh", d / "lease", d / "leases.db", d / "client.pid",
                   d / "lldpd.sock", d / "client.log")  # fmt: skip


def _quote(text: str) -> str:
    """A MUD URL inside a dhclient config string / shell word. URLs with quotes or backslashes are not
    lab URLs; refuse them rather than escape them."""
    if any(c in text for c in "\"\\'$`\n"):
        raise ValueError(f"refusing to quote {text!r}")
    return text


def udhcpc_script(files: ClientFiles, prefix_len: int) -> str:
    return f"""#!/bin/sh
# udhcpc event script of the mud_ryu lab: address only (never resolv.conf, never routes)
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; : > '{files.lease}' ;;
  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/{prefix_len}" dev "$interface";
               echo "$ip" > '{files.lease}.tmp' && mv '{files.lease}.tmp' '{files.lease}' ;;
esac
exit 0
"""


def dhclient_script(files: ClientFiles, prefix_len: int) -> str:
    return f"""#!/bin/sh
# dhclient event script of the mud_ryu lab: address only (never resolv.conf, never routes)
case "$reason" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr flush dev "$interface"; ip addr add "$new_ip_address/{prefix_len}" dev "$interface"
    echo "$new_ip_address" > '{files.lease}.tmp' && mv '{files.lease}.tmp' '{files.lease}' ;;
  EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface"; : > '{files.lease}' ;;
  BOUND6|RENEW6|REBIND6)
    ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad 2>/dev/null
    echo "$new_ip6_address" > '{files.lease}.tmp' && mv '{files.lease}.tmp' '{files.lease}' ;;
  EXPIRE6|RELEASE6|STOP6)
    [ -n "$old_ip6_address" ] && ip -6 addr del "$old_ip6_address/128" dev "$interface"; : > '{files.lease}' ;;
esac
exit 0
"""


def dhclient_config(url: str | None, v6: bool) -> str:
    if v6:
        lines = ["option dhcp6.mud-url code 112 = text;"]
        lines += [f'send dhcp6.mud-url "{_quote(url)}";'] if url else []
    else:
        lines = ["option mud-url code 161 = text;", "request subnet-mask;", "timeout 30;", "retry 1;"]
        lines += [f'send mud-url "{_quote(url)}";'] if url else []
    return "\n".join(lines) + "\n"


def lldpd_config(url: str) -> str:
    info = ",".join(f"{b:02x}" for b in url.encode("ascii"))
    return f"configure lldp custom-tlv oui 00,00,5e subtype 1 oui-info {info}\n"


def script_for(h: LabHost, files: ClientFiles) -> str | None:
    if h.client is Client.UDHCPC:
        return udhcpc_script(files, labhosts.PREFIX_LEN)
    if h.client in (Client.DHCLIENT, Client.DHCLIENT6):
        return dhclient_script(files, labhosts.PREFIX_LEN)
    return None


def config_for(h: LabHost) -> str | None:
    if h.client is Client.DHCLIENT:
        return dhclient_config(h.mud_url, v6=False)
    if h.client is Client.DHCLIENT6:
        return dhclient_config(h.mud_url, v6=True)
    if h.client is Client.LLDPD:
        return lldpd_config(h.mud_url) if h.mud_url else ""
    return None


def _dhclient_files(files: ClientFiles) -> list[str]:
    return ["-cf", str(files.config), "-lf", str(files.leases_db), "-pf", str(files.pid), "-sf", str(files.script)]


def client_argv(h: LabHost, files: ClientFiles, ifname: str) -> list[str]:
    """The long-running client of ``h`` (foreground, so its PID is the process we started)."""
    if h.client is Client.UDHCPC:
        argv = ["busybox", "udhcpc", "-f", "-i", ifname, "-s", str(files.script), "-p", str(files.pid),
                "-t", "5", "-T", "1", "-A", "1"]  # fmt: skip
        # the value is shell-quoted text for udhcpc (a bare word would be read as hex)
        return argv + (["-x", f'161:"{_quote(h.mud_url)}"'] if h.mud_url else [])
    if h.client is Client.DHCLIENT:
        return ["dhclient", "-4", "-d", "-v", *_dhclient_files(files), ifname]
    if h.client is Client.DHCLIENT6:
        return ["dhclient", "-6", "-d", "-v", *_dhclient_files(files), ifname]
    if h.client is Client.LLDPD:
        return ["lldpd", "-d", "-I", ifname, "-u", str(files.socket), "-O", str(files.config)]
    raise ValueError(f"{h.name} runs no client")


def release_argv(h: LabHost, files: ClientFiles, ifname: str) -> list[str] | None:
    """A command that makes the running client release its lease, or ``None`` when a signal does it
    (udhcpc: SIGUSR2) or there is no lease (lldpd)."""
    if h.client is Client.DHCLIENT:
        return ["dhclient", "-4", "-r", "-v", *_dhclient_files(files), ifname]
    if h.client is Client.DHCLIENT6:
        return ["dhclient", "-6", "-r", "-v", *_dhclient_files(files), ifname]
    return None


def dnsmasq_argv(ifname: str, workdir: Path) -> list[str]:
    """DHCPv4 + DHCPv6 for the lab, no DNS; every lab host's MAC gets its table address."""
    argv = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", f"--interface={ifname}",
        "--bind-interfaces", "--no-ping", "--dhcp-authoritative", "--log-dhcp", "--user=root", "--group=root",
        f"--log-facility={workdir / 'dnsmasq.log'}", f"--dhcp-leasefile={workdir / 'dnsmasq.leases'}",
        f"--pid-file={workdir / 'dnsmasq.pid'}",
        f"--dhcp-range={DHCP_RANGE[0]},{DHCP_RANGE[1]},255.255.255.0,{LEASE_TIME}",
        f"--dhcp-range={DHCP6_RANGE[0]},{DHCP6_RANGE[1]},64,{LEASE_TIME}",
    ]  # fmt: skip
    for h in labhosts.ALL_HOSTS:
        if h.dhcp:
            argv.append(f"--dhcp-host={h.mac},{h.ip}")
        elif h.client is Client.DHCLIENT6 and h.ip6:
            argv.append(f"--dhcp-host={h.mac},[{h.ip6}]")
    return argv

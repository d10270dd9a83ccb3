"""The packet-in backlog (issue 14, part 2): taken at once, worked through in bounded batches that yield, shed when
full -- the framework's queue (and with it the switch connection's reader and echo replies) never waits on the app."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from mud_ryu.compiler.edgeflows import LEARN_COOKIE, PUNT_COOKIE
from mud_ryu.edge.packet_in import BATCH, PacketIn, PacketInQueue, kind_of
from mud_ryu.enforcer.state import Effect, FlowUpdate
from mud_ryu.guard.ports import LEASE_COOKIE
from mud_ryu.lab.framebuild import dhcp_discover
from tests.enforcer_lab import BULB, DPID, NOW, URL, Lab
from tests.test_dhcp_lease import LEASED, SERVER_PORT, _ack, _lab, _out


class Loop:
    """A stand-in for the green threads: what was spawned, and how often the drainer yielded."""

    def __init__(self) -> None:
        self.spawned: list[Callable[[], None]] = []
        self.yields = 0

    def spawn(self, run: Callable[[], None]) -> None:
        self.spawned.append(run)

    def sleep(self, seconds: float) -> None:
        assert seconds == 0
        self.yields += 1


def _queue(lab: Lab, loop: Loop, executed: list[Effect], max_backlog: int = 4096) -> PacketInQueue:
    def execute(effects: Iterable[Effect]) -> None:
        executed.extend(lab.apply(list(effects)))

    return PacketInQueue(lab.enforcer, execute, loop.spawn, loop.sleep, lambda: NOW, lambda: 0.0, max_backlog)


def _mac(i: int) -> str:
    return f"02:00:00:01:{i >> 8:02x}:{i & 0xFF:02x}"


def _learning(i: int, port: int = 3) -> PacketIn:
    """A frame from a new source: the learning copy."""
    frame = bytes.fromhex("0200000000fe") + bytes.fromhex(_mac(i).replace(":", "")) + b"\x08\x00" + bytes(46)
    return PacketIn(DPID, port, LEARN_COOKIE, frame)


def test_the_kinds_follow_the_cookies() -> None:
    assert kind_of(PUNT_COOKIE) == "discovery" and kind_of(LEARN_COOKIE) == "learning"


def test_a_burst_is_taken_at_once_and_worked_through_in_batches_that_yield(tmp_path: Path) -> None:
    lab, loop, executed = Lab(tmp_path / "state"), Loop(), list[Effect]()
    lab.connect()
    queue = _queue(lab, loop, executed)
    count = 3 * BATCH + 5
    assert all([queue.put(_learning(i)) for i in range(count)])
    assert len(loop.spawned) == 1 and len(queue) == count and not executed  # nothing worked on in the handler
    loop.spawned[0]()
    assert queue.handled == count and len(queue) == 0
    assert loop.yields == 4  # after every BATCH: the connection's reader and the echo handler run between
    assert sum(1 for e in executed if isinstance(e, FlowUpdate)) == count  # each new host learned
    queue.put(_learning(count))
    assert len(loop.spawned) == 2  # a drainer that ended is started again


def test_a_discovery_frame_reaches_the_enforcer(tmp_path: Path) -> None:
    lab, loop, executed = Lab(tmp_path / "state"), Loop(), list[Effect]()
    lab.connect()
    queue = _queue(lab, loop, executed)
    queue.put(PacketIn(DPID, 1, PUNT_COOKIE, dhcp_discover("02:00:00:00:00:07", URL)))
    loop.spawned[0]()
    assert lab.enforcer.devices["02:00:00:00:00:07"].state == "quarantined"  # quarantined until its file verifies


def test_a_full_backlog_sheds_the_newest_and_counts_them(tmp_path: Path) -> None:
    lab, loop, executed = Lab(tmp_path / "state"), Loop(), list[Effect]()
    lab.connect()
    queue = _queue(lab, loop, executed, max_backlog=10)
    accepted = [queue.put(_learning(i)) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert queue.shed == {"learning": 5}
    loop.spawned[0]()
    assert queue.handled == 10  # what was shed is gone: the switch sends an unknown source's next frame again


def test_a_frame_that_fails_does_not_stop_the_drainer(tmp_path: Path) -> None:
    lab, loop = Lab(tmp_path / "state"), Loop()
    lab.connect()
    calls: list[int] = []

    def execute(effects: Iterable[Effect]) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in one handler")

    queue = PacketInQueue(lab.enforcer, execute, loop.spawn, loop.sleep, lambda: NOW, lambda: 0.0)
    queue.put(_learning(1))
    queue.put(_learning(2))
    loop.spawned[0]()
    assert queue.handled == 2 and len(calls) == 2
    queue.put(_learning(3))
    assert len(loop.spawned) == 2  # not stuck "draining"


def test_a_dhcp_servers_acknowledgement_is_not_shed_when_the_backlog_is_full(tmp_path: Path) -> None:
    """A lease copy is the only sight of a DHCP server's ACK the controller gets (the switch forwards the ACK and
    never sends it again): shed, the leased address stays claimable first come by another device (README "What a
    device on the LAN cannot do", DHCP snooping). Leases come from trusted ports under their own punt budget."""
    lab, loop, executed = _lab(tmp_path), Loop(), list[Effect]()
    queue = _queue(lab, loop, executed, max_backlog=10)
    assert all(queue.put(_learning(i)) for i in range(10))  # a flood of new sources fills the backlog
    assert not queue.put(_learning(10))
    assert queue.put(PacketIn(DPID, SERVER_PORT, LEASE_COOKIE, _ack(BULB, LEASED)))
    loop.spawned[0]()
    assert _out(lab, BULB, 1, LEASED)  # bound before first use, as without the flood
    assert queue.shed == {"learning": 1}

"""Home network for mud_ryu: one switch, the MUD devices, DHCP/MUD/"internet" servers, a management port.

From Python: ``from mud_ryu.lab.labtopo import HomeTopo``. The Mininet-user way (only ever on a machine or in a
namespace you can afford to have Mininet clean up)::

    mn --custom topologies/home.py --topo home --controller remote,ip=127.0.0.1,port=6653 \\
       --switch ovs,datapath=user,protocols=OpenFlow13

The hosts, MACs and addresses are in ``mud_ryu/lab/labhosts.py``; the devices' clients are started by
``mud_ryu.lab.homelab`` (or by hand, see README.md).
"""

from mud_ryu.lab.labtopo import HomeTopo

topos = {"home": HomeTopo}

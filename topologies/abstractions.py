"""The home network plus three more DHCP clients (toothbrush, speaker, doorlock on ports 12-14): enough devices to
show every RFC 8520 abstraction at once (``mud_ryu.lab.abstractions_scenario``).

``mn --custom topologies/abstractions.py --topo abstractions --controller remote,ip=127.0.0.1,port=6653 \\
   --switch ovs,datapath=user,protocols=OpenFlow13`` (see home.py for the caveats).
"""

from mud_ryu.lab.labtopo import AbstractionsTopo

topos = {"abstractions": AbstractionsTopo}

"""Two switches (s1-s2 on port 20 of both) with the home hosts spread over them: device moves, multi-switch.

``mn --custom topologies/two_switch.py --topo two_switch --controller remote,ip=127.0.0.1,port=6653 \\
   --switch ovs,datapath=user,protocols=OpenFlow13`` (see home.py for the caveats).
"""

from mud_ryu.lab.labtopo import TwoSwitchTopo

topos = {"two_switch": TwoSwitchTopo}

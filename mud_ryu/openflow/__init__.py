"""Flow records -> what a switch is sent: OpenFlow 1.3 wire bytes, Ryu message objects (``datapath=None``) and
``ovs-ofctl`` text.

May import: ``compiler`` and, for the Ryu messages only, ``mud_ryu.compat``.
"""

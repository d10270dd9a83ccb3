"""Flow records -> what a switch is sent: OpenFlow 1.3 wire bytes, Ryu message objects (``datapath=None``) and
``ovs-ofctl`` text; and the normalised keys that compare what a switch reports with what was sent.

May import: ``compiler`` and, for the Ryu messages and the switch's flow keys only, ``mud_ryu.compat``.
"""

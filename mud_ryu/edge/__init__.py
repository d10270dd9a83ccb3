"""The framework edge beside ``mud_ryu.app``: carrying out the enforcer's effects (flow updates and barriers,
held frames, alerts) and the background loops. Values and callables from the app; no framework import.

May import every package below the app; the framework only through ``mud_ryu.compat``.
"""

"""The `mud-ryu` subcommands, one module each (NAME, HELP, add_arguments, run), loaded by name from `mud_ryu.cli`.

Edges, like the CLI: they may import any package, read files and talk to the REST API; never the framework.
"""

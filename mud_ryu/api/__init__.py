"""The operator REST API: views, framework-free handlers and their request/response codec, WSGI glue, the enforcer's
side and the CLI's side.

May import: ``enforcer`` and the packages below it; never the controller framework.
"""

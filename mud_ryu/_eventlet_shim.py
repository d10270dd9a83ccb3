"""Let the unmodified ``ryu-manager`` start on eventlet >= 0.33.3.

Ryu 4.34's ``ryu/app/wsgi.py`` does ``from eventlet.wsgi import ALREADY_HANDLED``; no eventlet
release that works on Python 3.11 still has that name, and ``ryu-manager`` imports the module
before any application code runs. A ``.pth`` file imports this module at interpreter start; it
installs a one-shot import hook that adds the name just before ``ryu.app.wsgi`` is loaded. Since
eventlet 0.31 the WSGI server checks its own "already handled" flag, so an empty list (which no
application returns by identity) is a correct stand-in. Nothing is imported eagerly.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

_TRIGGERS = frozenset({"ryu.app.wsgi"})


def patch_eventlet_wsgi() -> None:
    """Add ``eventlet.wsgi.ALREADY_HANDLED`` if this eventlet lacks it."""
    with warnings.catch_warnings():
        # eventlet announces its maintenance mode on import; Ryu cannot move off it, so the
        # warning would only add noise to every ryu-manager start.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import eventlet.wsgi
        except ImportError:  # no eventlet: nothing to patch, Ryu will report its own error
            return
    if not hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
        eventlet.wsgi.ALREADY_HANDLED = []


class _ShimFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; patches eventlet the first time a trigger module is imported."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname in _TRIGGERS:
            uninstall()
            patch_eventlet_wsgi()
        return None


_FINDER = _ShimFinder()


def install() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


install()

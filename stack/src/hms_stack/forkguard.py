"""Imported first in the forkserver of the fork launcher: it dies with ``hms-ops up``.

The forkserver is the parent of every forked service, which get SIGTERM when it dies (see
:mod:`hms_stack.launch`). It is started from ``up``'s main thread, so a parent-death signal
here fires when ``up`` dies, even by ``kill -9``.
"""

from __future__ import annotations

import os
import signal

from .launch import PARENT_ENV, die_with_parent

if PARENT_ENV in os.environ:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != int(os.environ[PARENT_ENV]):  # up died before we could ask
        os._exit(1)

"""Pool tasks that kill their worker on chosen clips, for tests/test_prepare.py.

A module of its own, importing only what the pool's workers have loaded already, so a
fresh worker unpickles these functions at once (not the whole test module).
"""

import os
import signal

from helpers.prepare import PrepareTask, run_task


def die_on_boom(task: PrepareTask):
    """Stands in for ``run_task``: kills its worker on clips named 'boom*' (os._exit, or SIGKILL for 'boomkill*')."""
    if task.name.startswith("boom"):
        if task.name.startswith("boomkill"):
            os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer
        os._exit(3)  # what a decoder segfault looks like to the pool
    return task.name, {"status": "prepared"}


def die_on_one_clip(task: PrepareTask):
    """``run_task``, except that the worker is SIGKILLed on x-y_z.q.000.mp4 (a readable clip)."""
    if task.name == "x-y_z.q.000.mp4":
        os.kill(os.getpid(), signal.SIGKILL)
    return run_task(task)

"""Fake ``modules_forge.main_thread`` (Forge 2): the UI's jobs run on one thread.

The fake runs a task at once, in the caller's thread. Like Forge 2, a failed task's
exception is kept in ``last_exception`` (the UI's error handler shows it) and its result
is None.
"""

import traceback

last_exception = None


class Task:
    def __init__(self, task_id, func, args, kwargs):
        self.task_id = task_id
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.result = None
        self.exception = None

    def work(self):
        global last_exception
        try:
            self.result = self.func(*self.args, **self.kwargs)
            self.exception = None
            last_exception = None
        except Exception as e:
            traceback.print_exc()
            self.exception = e
            last_exception = e


def run_and_wait_result(func, *args, **kwargs):
    task = Task(0, func, args, kwargs)
    task.work()
    return task.result

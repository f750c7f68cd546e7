"""Fake ``modules_forge.main_thread`` (Forge Classic, reForge): the UI's jobs run on one
thread.

The fake runs a task at once, in the caller's thread. Like old Forge, the loop prints a
failed task's exception and drops it: the result is None, and nothing keeps the error.
"""

import traceback


class Task:
    def __init__(self, task_id, func, args, kwargs):
        self.task_id = task_id
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.result = None

    def work(self):
        self.result = self.func(*self.args, **self.kwargs)


def run_and_wait_result(func, *args, **kwargs):
    task = Task(0, func, args, kwargs)
    try:
        task.work()
    except Exception as e:
        traceback.print_exc()
        print(e)
    return task.result

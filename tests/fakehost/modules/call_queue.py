"""Fake ``modules.call_queue``: the lock that serialises GPU work."""

import threading

queue_lock = threading.RLock()

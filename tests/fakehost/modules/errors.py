"""Fake ``modules.errors``: A1111 logs a swallowed exception with ``report``."""

reported: list[str] = []


def report(message, *, exc_info=False):
    reported.append(message)

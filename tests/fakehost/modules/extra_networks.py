"""Fake ``modules.extra_networks``: removing ``<name:args>`` from prompts."""

import re
from collections import defaultdict

_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")


def parse_prompt(prompt):
    found = defaultdict(list)

    def take(match):
        found[match.group(1)].append(match.group(2).split(":"))
        return ""

    return _EXTRA_NETWORK.sub(take, prompt), found

"""What FlexDiffuse's webui glue works with: the host it runs in and its vision towers."""

from __future__ import annotations

from dataclasses import dataclass, field

from .hosts import Host
from .vision_towers import VisionTowers


@dataclass
class Runtime:
    """The host and the vision towers of this webui process (kept across jobs and reloads)."""

    host: Host
    towers: VisionTowers = field(default_factory=VisionTowers)

"""Fake ``modules_forge.forge_version`` (Forge Classic)."""

version = "classic"

"""Fake ``modules_forge.forge_version`` (Forge 2 main)."""

version = "2.0.1v1.10.1"

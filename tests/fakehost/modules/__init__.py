"""Fake of A1111's ``modules`` package for FlexDiffuse's tests (see ../README.md)."""

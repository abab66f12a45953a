"""Shared first-party library used by some (not all) tasks of the example projects."""

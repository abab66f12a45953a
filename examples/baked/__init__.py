"""Example project whose image bakes every task's code (all tasks run in `baked` mode)."""

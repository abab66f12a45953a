"""Example project with typed inputs and outputs: a dataclass in, a dataclass out, files, lists and dicts."""

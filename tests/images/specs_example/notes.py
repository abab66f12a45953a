"""In the folder, imported by no task: never baked (flytekit's source_root would copy it)."""
UNUSED = True

"""Run by the raw container task: not imported by anything, copied into the image by its ImageSpec."""
import sys

n = int(sys.argv[1])
with open(sys.argv[2], "w") as f:
    f.write(str(n * 3))

"""Example project mixing baked ImageSpec tasks, fast-registered tasks, a map task and a raw container task."""

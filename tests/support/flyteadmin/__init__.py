"""A stand-in FlyteAdmin for tests: a real gRPC server built from flyteidl's service definitions.

Two halves that never import each other:

- `fixture.py` runs in the test runner (CPython >= 3.9, standard library only): it starts the
  server as a subprocess in the user's environment and talks to it over a small JSON endpoint.
- everything else (`server.py`, `service.py`, `store.py`, `compiler.py`, `blobs.py`) runs in the
  user's environment, which has flyteidl and grpcio.
"""

"""Running one call: the pipeline (route, prepare, admit, call, tally, record), routing, media,
thought signatures and the ASGI edge that serves the proxy routes."""

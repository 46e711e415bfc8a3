"""The sidecar over HTTP: the app, its routes, the chat service in front of the upstream, request
bodies, the background audit and its judges, and the Prometheus metrics."""

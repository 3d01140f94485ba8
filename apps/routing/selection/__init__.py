"""Which deployment serves a request: the routing policy (router settings and model groups),
the strategies, each deployment's shared state (cooldowns, load, latency) and its health."""

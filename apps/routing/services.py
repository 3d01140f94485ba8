"""The routing app has no writes of its own: one request's flow is apps.routing.proxy, the choice of deployment apps.routing.router."""

"""Router settings get their admin with the router issue; deployments are edited under Providers."""

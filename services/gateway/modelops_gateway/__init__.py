"""ModelOps gateway: the platform's only public HTTP door (API keys, roles, rate limits, idempotency)."""

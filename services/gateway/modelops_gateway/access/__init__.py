"""API keys and roles: who may call the gateway, and as what."""

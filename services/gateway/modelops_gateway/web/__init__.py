"""Web plumbing every feature's routes share: callers and roles (auth), idempotency, rate limits, multipart bodies
and their text fields (multipart, forms), upstream answers handed on (relay), and OpenAPI fragments (openapi)."""

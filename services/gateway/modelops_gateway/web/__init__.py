"""Web plumbing every feature's routes share: callers and roles, idempotency, rate limits, multipart bodies, relayed
upstream answers, OpenAPI problem fragments and OpenAI's error shape."""

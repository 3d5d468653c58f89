"""Deployments: Deploy and Undeploy commands through the outbox, their status from the inference service, and the
OpenAI-compatible inference routes relayed to it."""

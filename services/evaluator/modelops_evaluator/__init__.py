"""ModelOps evaluator: signed eval reports of models, adapters and deployments on versioned suites."""

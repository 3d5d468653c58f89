"""Usage and budgets: what jobs and deployments used, priced; per key, job and deployment; spending limits."""

"""ModelOps shared runtime: what every service stands on."""

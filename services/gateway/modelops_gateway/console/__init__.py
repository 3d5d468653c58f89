"""The web console (`/ui`) and the API behind it: jobs of every kind with their flow across services, Kafka's
topics, consumer groups and dead letters, deployments' serving figures and artifacts' signature state. Why it is
built this way: services/gateway/README.md, "Console"."""

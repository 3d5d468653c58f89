"""Training jobs at the gateway: submission and cancellation (commands through the outbox), the gateway's own record
of each job and its numbered events (projected from training.events.v1), and live event streams across replicas."""

"""ModelOps trainer: fine-tunes LoRA / QLoRA / DPO adapters for jobs read from Kafka and hands them to the registry."""

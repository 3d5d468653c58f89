"""ModelOps inference: OpenAI-compatible serving of verified base models and hot-loaded PEFT adapters."""

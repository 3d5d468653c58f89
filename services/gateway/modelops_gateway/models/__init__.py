"""Model imports: a GGUF uploaded, turned by the trainer into a signed quantized_model and a base_model."""

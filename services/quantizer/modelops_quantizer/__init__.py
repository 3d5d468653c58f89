"""ModelOps quantizer: merged, quantized GGUF models with measured quality loss."""

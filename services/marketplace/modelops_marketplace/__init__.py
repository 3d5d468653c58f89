"""ModelOps marketplace: signed adapters and quantized models listed, searched, checked against your base, rated,
downloaded and installed."""

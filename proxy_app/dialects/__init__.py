"""Client dialects: one package per protocol a client speaks (codec, encoder, HTTP surface), listed in registry.py."""

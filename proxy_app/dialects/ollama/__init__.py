"""The Ollama client dialect (/api): request codec, response and NDJSON encoder, HTTP surface."""

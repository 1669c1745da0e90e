"""The OpenAI client dialect (/v1): request codec, response and stream encoder, HTTP surface."""

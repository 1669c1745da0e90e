"""The OpenAI-compatible upstream kind: its client and its codec (hub <-> OpenAI JSON)."""

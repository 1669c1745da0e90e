"""The Gemini upstream kind: its client (URLs, key, SSE) and its codec (hub <-> Gemini REST JSON)."""

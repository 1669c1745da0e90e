"""OpenAI Responses API client dialect (/v1/responses): Codex CLI, the openai SDK, the Agents SDK."""

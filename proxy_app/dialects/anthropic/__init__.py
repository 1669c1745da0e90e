"""The Anthropic Messages API client dialect (Claude Code, the `anthropic` SDK): /v1/messages."""

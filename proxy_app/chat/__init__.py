"""The chat product: sessions, the WebSocket chat and the chat page."""

"""The Gemini-native client dialect (/v1beta): request codec, response and stream encoder, HTTP surface."""

"""The sessions dialect (/start_chat, /send_message, /end_chat, /v1/sessions): codec and HTTP surface."""

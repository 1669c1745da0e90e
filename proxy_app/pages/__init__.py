"""Pages for members (not staff): the member's own usage and limits."""

"""The core: the hub representation, errors, and the one pipeline that runs every call."""

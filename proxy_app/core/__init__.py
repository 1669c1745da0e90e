"""The ground floor: the hub representation every dialect and upstream translates to, and the errors."""

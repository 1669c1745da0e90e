"""Operations: the access log, metrics, health and detailed request logs."""

"""Label Studio: the HTTP client and the mapping of its payloads."""

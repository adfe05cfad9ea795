"""What moves data: jobs, the import, webhook events, reconciliation."""

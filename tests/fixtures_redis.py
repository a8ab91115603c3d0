"""pytest fixtures for a throwaway real redis-server (filled in by the ledger work)."""

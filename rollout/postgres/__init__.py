"""What rollout reads of PostgreSQL itself: catalogs and statistics."""

"""The rollout controller: flags, cohorts, router, shadow comparison. Knows nothing of the legacy domain."""

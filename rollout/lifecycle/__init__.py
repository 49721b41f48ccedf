"""A query's way from the first shadow comparison to its function dropped: plans and their gates, the autopilot,
retirement readiness and the retirement migration. Every flag move here is a flags.writes write."""

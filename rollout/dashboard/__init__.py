"""The rollout dashboard inside the admin: its pages (views) and their server-rendered SVG charts (charts)."""

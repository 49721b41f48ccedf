"""The JSON API: GET /api/queries/<name>?param=value… (views), who is asking (auth), every failure as JSON (errors)."""

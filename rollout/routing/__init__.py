"""Which side serves a call: the router (decide, serve, fall back or rescue, sample for shadow), its Decision,
the actor asking and its cohorts, the middleware that attaches request.actor, and what the router costs (benchmark)."""

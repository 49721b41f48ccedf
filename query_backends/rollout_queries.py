"""The nine legacy queries, registered with rollout as any host registers its own (docs/adopting.md)."""

import rollout
from query_backends.registry import DEFINITIONS

for definition in DEFINITIONS:
    rollout.register(definition)

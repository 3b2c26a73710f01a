"""Models: cards and versions, the registry, the teacher and student roles, inference over pairs."""

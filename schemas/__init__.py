"""The one definition of every policyrank table (:mod:`schemas.tables`); jobs import their
schemas from there. :mod:`schemas.vocab` holds the closed vocabularies, free of Spark."""

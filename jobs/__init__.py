"""policyrank Spark jobs: each is extract -> transform -> load, with the transform a pure function."""

"""policyrank Spark jobs: extract -> transform -> load, the transform a pure function."""

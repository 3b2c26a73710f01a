"""Process plumbing the steps share: errors, logging, the Spark session, day locks, test faults."""

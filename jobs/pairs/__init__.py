"""Which (member, job) pairs exist: candidate blocking, and the samples teacher and raters grade."""

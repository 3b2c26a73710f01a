"""Model code behind policyrank's pandas UDFs. Everything here except ``score_udf`` is Spark-free:
pandas/numpy in, numpy out, so it can be tested, benchmarked and run on a GPU without a JVM."""

"""The closed vocabularies some columns take. Plain Python (no Spark), so Spark-free code such as
the simulator and the GPU benchmarks can share them."""

SENIORITY_LEVELS = ("entry", "mid", "senior", "staff", "principal")
WORKPLACE_TYPES = ("onsite", "hybrid", "remote")

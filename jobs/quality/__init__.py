"""Quality: ranking and agreement metrics, the held-out split, the evaluation report."""

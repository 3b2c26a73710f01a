"""The simulator: what cannot be had offline, behind its own boundary.

A synthetic world of members and jobs rendered from hidden attributes (``truth``), simulated
human raters (``gold_labels``), the hidden true grades of gold pairs (``true_grades``) and a
simulated LLM judge (teacher backend ``simulated``). Used by the demo, the tests and the
benches; no production step imports it (``tests/test_boundary.py`` checks).
"""

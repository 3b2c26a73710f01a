"""The Delta warehouse: every table read and write, and the input contract."""

"""Configuration: typed settings from conf/local.yaml, and the product policy document."""

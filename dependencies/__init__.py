"""Helpers shared by the jobs: Spark sessions, configuration, logging, I/O."""

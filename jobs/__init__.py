"""PySpark jobs and the transformation steps they are made of."""

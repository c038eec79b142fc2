"""The one place that reaches the JVM: SparkSession building, job tagging, Py4J, and
Hadoop's FileSystem (the log and checkpoint files on any scheme Spark reaches)."""

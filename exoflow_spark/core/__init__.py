"""Pure-Python core: tasks, options, the DAG, ids, statuses, task context, redaction.

Never imports pyspark: everything here can be used and tested without a JVM.
"""

# Databricks notebook source
# MAGIC %md
# MAGIC # Approval check and deployment
# MAGIC The version trained in this job run becomes `@champion` if it passed validation and carries the
# MAGIC tag `approval` = `approved`; otherwise this task fails with what to do. Approve, then repair the run.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "promote")

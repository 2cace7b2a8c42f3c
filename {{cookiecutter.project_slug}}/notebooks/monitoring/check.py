# Databricks notebook source
# MAGIC %md
# MAGIC # Retraining check
# MAGIC Does the newest batch, not yet scored, drift from the `@champion` baseline? Publishes the task
# MAGIC value `retrain` (true/false) that the job's condition task reads.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "check")

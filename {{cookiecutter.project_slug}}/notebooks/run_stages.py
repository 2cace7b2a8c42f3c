# Databricks notebook source
# MAGIC %md
# MAGIC # Run stages
# MAGIC Runs the stages named by the task's `stages` parameter (comma-separated, in run order), for a
# MAGIC stage that has no notebook of its own: `notebook_task: {notebook_path: ../notebooks/run_stages.py,
# MAGIC base_parameters: {stages: my_stage}}`. The job's parameters arrive as widgets, as elsewhere.

# COMMAND ----------

# MAGIC %pip install -q -r ../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils)

# Databricks notebook source
# MAGIC %md
# MAGIC # Bootstrap
# MAGIC Checks that this job's identity can use the schema and landing volume, and prepares them.
# MAGIC Parameters come from the job (`resources/bootstrap_job.yml`) as widgets.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/base.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "bootstrap")

# Databricks notebook source
# MAGIC %md
# MAGIC # Monitoring
# MAGIC Joins labels that have arrived into the inference table, then writes PSI per input and on the
# MAGIC score against the version's training baseline, and performance metrics, to `drift_metrics`.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "monitor")

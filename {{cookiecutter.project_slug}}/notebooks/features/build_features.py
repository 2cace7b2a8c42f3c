# Databricks notebook source
# MAGIC %md
# MAGIC # Features
# MAGIC Computes the feature table (Unity Catalog time-series feature table) from gold.
# MAGIC Parameters come from the job (`resources/feature_engineering_job.yml`) as widgets.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "features")

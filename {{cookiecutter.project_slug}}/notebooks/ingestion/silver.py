# Databricks notebook source
# MAGIC %md
# MAGIC # Ingestion: silver
# MAGIC Casts to contract types, validates with Great Expectations, quarantines failing rows, deduplicates and MERGEs; fails closed above the quarantine threshold.
# MAGIC Parameters come from the job (`resources/ingestion_job.yml`) as widgets.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/base.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "silver")

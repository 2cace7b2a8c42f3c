# Databricks notebook source
# MAGIC %md
# MAGIC # Ingestion: gold
# MAGIC MERGEs business-level entity x time rows for every silver row changed since the last run.
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

run_stage(dbutils, "gold")

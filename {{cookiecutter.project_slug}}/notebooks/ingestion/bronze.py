# Databricks notebook source
# MAGIC %md
# MAGIC # Ingestion: bronze
# MAGIC Appends new landing files to bronze exactly once (Auto Loader with a checkpoint in the landing volume).
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

run_stage(dbutils, "bronze")

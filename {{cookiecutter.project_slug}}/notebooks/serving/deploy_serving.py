# Databricks notebook source
# MAGIC %md
# MAGIC # Real-time serving endpoint
# MAGIC Creates or updates the Model Serving endpoint of `@champion` (with `@challenger` as canary or shadow,
# MAGIC per `serving` in `conf/project.yml`). Skipped until the first promotion: no endpoint without a model.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "deploy_serving")

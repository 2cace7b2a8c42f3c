# Databricks notebook source
# MAGIC %md
# MAGIC # Training
# MAGIC Trains LightGBM on the point-in-time training set (or gold), logs it to the MLflow experiment
# MAGIC and registers a new version of the Unity Catalog model. Parameters come from the job
# MAGIC (`resources/training_job.yml`) as widgets.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/base.txt databricks-feature-engineering

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "train")

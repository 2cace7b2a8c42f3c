# Databricks notebook source
# MAGIC %md
# MAGIC # Training
# MAGIC Trains the estimator named in `conf/project.yml` on the point-in-time training set (or gold),
# MAGIC logs it to the MLflow experiment and registers a new version of the Unity Catalog model.
# MAGIC Parameters come from the job
# MAGIC (`resources/training_job.yml`) as widgets.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "train")

# Databricks notebook source
# MAGIC %md
# MAGIC # Model inventory
# MAGIC Rewrites `model_inventory`: one row per registered version of the project's model, with its
# MAGIC aliases, validation and approval, its run's metrics, the Delta versions of its training data,
# MAGIC the git commit, package and library versions, its alias history and when it last scored.

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "inventory")

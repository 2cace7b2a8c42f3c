# Databricks notebook source
# MAGIC %md
# MAGIC # Validation gate
# MAGIC On the same holdout, the new model version must beat the naive baselines by a margin, meet any
# MAGIC absolute thresholds and not be worse than `@champion`; a passing version becomes `@challenger`. In `enabled` mode a failure fails this task.
# MAGIC Promotion to `@champion` needs the version tag `approval` = `approved` (set by a reviewer or CI).

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "validate")

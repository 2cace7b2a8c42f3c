# Databricks notebook source
# MAGIC %md
# MAGIC # Batch inference
# MAGIC Scores the latest period with `@champion` (loaded once per partition, `mapInArrow`) after the
# MAGIC data gate on its inputs, and MERGEs the rows into the inference table (reruns insert nothing).

# COMMAND ----------

# MAGIC %pip install -q -r ../../requirements/databricks.txt

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import sys

sys.path.insert(0, os.path.abspath("../../src"))

from {{ cookiecutter.package_name }}.notebook import run_stage

run_stage(dbutils, "score")

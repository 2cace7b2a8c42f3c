# Databricks notebook source
# MAGIC %md
# MAGIC # Cost report
# MAGIC DBUs and list cost of this project per day and environment, from `system.billing.usage`, grouped by
# MAGIC the cost tags every job and job cluster carries (`sql/cost_attribution.sql`). Needs SELECT on
# MAGIC `system.billing`.

# COMMAND ----------

dbutils.widgets.text("project", "{{ cookiecutter.project_slug }}")
dbutils.widgets.text("days", "30")

# COMMAND ----------

from pathlib import Path

query = Path("../../sql/cost_attribution.sql").read_text()
costs = spark.sql(query, args={"project": dbutils.widgets.get("project"), "days": dbutils.widgets.get("days")})
display(costs)

# COMMAND ----------

import matplotlib.pyplot as plt

daily = costs.groupBy("usage_date", "env").sum("list_cost").toPandas()
table = daily.pivot_table(index="usage_date", columns="env", values="sum(list_cost)", aggfunc="sum").fillna(0)
ax = table.plot(kind="bar", stacked=True, figsize=(12, 4.5), width=0.9)
ax.set(title=f"List cost per day and environment: {dbutils.widgets.get('project')}", xlabel="", ylabel="list cost")
ax.set_xticklabels([d.strftime("%m-%d") for d in table.index], rotation=90)
plt.tight_layout()
display(ax.figure)

# COMMAND ----------

by_owner = costs.groupBy("cost_center", "owner", "env", "product").sum("dbus", "list_cost").orderBy("env")
display(by_owner)

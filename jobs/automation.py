"""Declarative automation that ships running: ``eval_report`` re-runs on its own.

``eval_report`` carries ``AutomationCondition.eager()``: a new model or a new pair dataset
makes it due. Dagster evaluates automation conditions only through
an automation-condition sensor, and the default one starts stopped; this one starts
running, so under ``aesthetic ui`` (or any ``dagster-daemon``) re-evaluation happens
without a click. Turn it off in the UI under Automation.
"""

import dagster as dg

eager_re_evaluation_sensor = dg.AutomationConditionSensorDefinition(
    "eager_re_evaluation",
    target=dg.AssetSelection.assets("eval_report"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Requests eval_report when its model or its pairs change (AutomationCondition.eager).",
)

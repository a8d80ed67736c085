"""What the job adds to an alert for the investigator, one module a concern.

- :mod:`jobs.alerts.value`: the energy at stake, its value, the priority and the rank;
- :mod:`jobs.alerts.history`: new or continuing since the previous complete run, or cleared;
- :mod:`jobs.alerts.evidence`: the per-day evidence rows of the highest-ranked alerts;
- :mod:`jobs.alerts.page`: the run's HTML report of its alerts (plotly charts, laid out by the
  Jinja2 template ``alerts.html.j2`` beside it).
"""

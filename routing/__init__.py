"""Routing decides, and writes nothing: rules, the text classifier, the choice of technician, SLA policy.

Owns: the rules engine (`rules`, `conditions`, `rules_loader`, `builtin_rules`), the text
classifier with its training, evaluation and model store (`classifier`, `features`,
`calibration`, `training`, `evaluation`, `dataset`, `model_store`, `admin`, `seed`), the choice
of technician (`assign`, `people`, `shifts`), and SLA policy with business calendars (`sla`,
`calendar`). Functions here take facts and return decisions; the database is written by
`tickets`, which acts on them. The model store writes model files, never the database.

May import: `models` (its enums), never `notify`, `tickets`, `intake` or `helpdesk`.
"""

"""Associations: the pool of a program's exposures, candidates, rules, ASN JSON and
completion tracking (the real DMS association generator, for imaging).

``state`` reads the catalog, ``candidates``/``pool``/``rules``/``asn`` are pure functions
of the plan and that state, ``builder`` decides what to emit, ``report``/``graphics``
render the program's association report (HTML) and ``task`` archives them.
"""

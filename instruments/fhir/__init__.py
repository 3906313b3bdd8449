"""FHIR R4 and the instrument definitions, both ways.

- ``importer``: a FHIR Questionnaire (JSON) into a definition file for a person to review
  (``python -m instruments import-fhir``; the one module that needs a package, tomli-w).
- ``exporter``: a definition as a FHIR Questionnaire, with its scores and missing-item rule.

Both know definitions only. A patient's records as a Bundle are the app's business
(``outcomes/services/fhir_export.py``), which calls ``exporter``: the engine imports nothing
of the app. Nothing is imported here, so ``import instruments.fhir.exporter`` stays light.
"""

LOINC = "http://loinc.org"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

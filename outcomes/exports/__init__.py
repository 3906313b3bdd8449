"""Exports for a clinic's staff: CSV files of its records and a patient's FHIR R4 Bundle."""
